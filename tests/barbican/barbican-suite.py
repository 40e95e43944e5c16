#!/usr/bin/python3
# Barbican's PKCS#11 crypto plugin (Debian python3-barbican, unmodified)
# driven against a PKCS#11 module: tang-pkcs11 next to a real tangd
# (tests/fixtures/with-tangd), or SoftHSM2 for comparison.
#
# Runs with the system python3 (/usr/bin/python3), which has Barbican's
# modules; ~/.pyenv's python3 does not.  No database server: the plugin
# classes are used directly (P11CryptoPlugin with a ConfigOpts object),
# Barbican's own binding code stores KEK data in sqlite, and the real
# `barbican-manage hsm ...` commands run as separate processes.
#
#   barbican-suite.py run    --backend tang|softhsm --variant V --pin true|false
#   barbican-suite.py outage --pin true|false           (tang only)
#   barbican-suite.py probe  --backend tang|softhsm --pin true|false
#
# `run` = the whole Barbican life cycle for one [p11_crypto_plugin]
# configuration (see VARIANTS); `probe` = the PKCS#11 calls Barbican makes,
# made one by one with Barbican's own cffi declarations, each CK_RV printed
# next to the one the contract expects (docs/barbican.md).
#
# Exit status: 0 all steps passed; 1 a step failed; 77 skip: Barbican or a
# peer tool is missing (a failure under CI=true), or the module still
# answers CKR_FUNCTION_NOT_SUPPORTED for a function Barbican calls (a skip
# even under CI: the feature is not there yet, docs/barbican.md).
import argparse
import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
SOFTHSM_LIB = '/usr/lib/softhsm/libsofthsm2.so'
SO_PIN = '12345678'
USER_PIN = '1234'
WRONG_PIN = '9999'
TOKEN_LABEL = 'tang'
CI = os.environ.get('CI') == 'true'

# The [p11_crypto_plugin] configurations: Barbican's defaults and each
# alternative it offers.  Token lookup: by label unless the variant says.
VARIANTS = {
    'defaults': {},
    'gcm': {'encryption_mechanism': 'CKM_AES_GCM'},
    'generic-hmac': {'hmac_key_type': 'CKK_GENERIC_SECRET',
                     'hmac_keygen_mechanism': 'CKM_GENERIC_SECRET_KEY_GEN'},
    'aes-mac': {'hmac_keywrap_mechanism': 'CKM_AES_MAC'},
    'serial': {'lookup': 'serial'},
    'slot': {'lookup': 'slot'},
    'os-locking': {'os_locking_ok': True},
    'ro-session': {'rw_session': False},
}

# Secret sizes (bytes); Barbican's API caps secrets at 20000 bytes.
SIZES = [1, 15, 16, 17, 31, 32, 33, 255, 1000, 10000, 20000]

CKR = {
    0x0: 'CKR_OK', 0x3: 'CKR_SLOT_ID_INVALID', 0x5: 'CKR_GENERAL_ERROR',
    0x6: 'CKR_FUNCTION_FAILED', 0x7: 'CKR_ARGUMENTS_BAD',
    0x12: 'CKR_ATTRIBUTE_TYPE_INVALID', 0x13: 'CKR_ATTRIBUTE_VALUE_INVALID',
    0x20: 'CKR_DATA_INVALID', 0x21: 'CKR_DATA_LEN_RANGE',
    0x30: 'CKR_DEVICE_ERROR', 0x40: 'CKR_ENCRYPTED_DATA_INVALID',
    0x41: 'CKR_ENCRYPTED_DATA_LEN_RANGE', 0x54: 'CKR_FUNCTION_NOT_SUPPORTED',
    0x60: 'CKR_KEY_HANDLE_INVALID', 0x62: 'CKR_KEY_SIZE_RANGE',
    0x63: 'CKR_KEY_TYPE_INCONSISTENT', 0x68: 'CKR_KEY_FUNCTION_NOT_PERMITTED',
    0x69: 'CKR_KEY_NOT_WRAPPABLE', 0x6a: 'CKR_KEY_UNEXTRACTABLE',
    0x70: 'CKR_MECHANISM_INVALID', 0x71: 'CKR_MECHANISM_PARAM_INVALID',
    0x82: 'CKR_OBJECT_HANDLE_INVALID', 0x90: 'CKR_OPERATION_ACTIVE',
    0x91: 'CKR_OPERATION_NOT_INITIALIZED', 0xa0: 'CKR_PIN_INCORRECT',
    0xa4: 'CKR_PIN_LOCKED', 0xb3: 'CKR_SESSION_HANDLE_INVALID',
    0xb5: 'CKR_SESSION_READ_ONLY', 0xc0: 'CKR_SIGNATURE_INVALID',
    0xc1: 'CKR_SIGNATURE_LEN_RANGE', 0xd0: 'CKR_TEMPLATE_INCOMPLETE',
    0xd1: 'CKR_TEMPLATE_INCONSISTENT', 0xe0: 'CKR_TOKEN_NOT_PRESENT',
    0xe1: 'CKR_TOKEN_NOT_RECOGNIZED', 0xe2: 'CKR_TOKEN_WRITE_PROTECTED',
    0xf0: 'CKR_UNWRAPPING_KEY_HANDLE_INVALID',
    0x100: 'CKR_USER_ALREADY_LOGGED_IN', 0x101: 'CKR_USER_NOT_LOGGED_IN',
    0x104: 'CKR_USER_ANOTHER_ALREADY_LOGGED_IN', 0xb0: 'CKR_SESSION_CLOSED',
    0x102: 'CKR_USER_PIN_NOT_INITIALIZED', 0x110: 'CKR_WRAPPED_KEY_INVALID',
    0x112: 'CKR_WRAPPED_KEY_LEN_RANGE', 0x113: 'CKR_WRAPPING_KEY_HANDLE_INVALID',
    0x150: 'CKR_BUFFER_TOO_SMALL', 0x190: 'CKR_CRYPTOKI_NOT_INITIALIZED',
    0x191: 'CKR_CRYPTOKI_ALREADY_INITIALIZED',
}


def rvname(rv):
    return CKR.get(rv, hex(rv))


def skip_or_fail_missing(what):
    """A missing peer: skip on a developer box, fail under CI."""
    print('SKIP: %s' % what)
    if CI:
        print('FAIL: CI=true: a missing peer is a failure')
        sys.exit(1)
    sys.exit(77)


def hsm_rv(exc):
    """The CK_RV in a Barbican P11CryptoPluginException message
    ("HSM returned response code: 0x30 CKR_DEVICE_ERROR"), or None."""
    m = re.search(r'response code: 0x([0-9a-fA-F]+)', str(exc))
    return int(m.group(1), 16) if m else None


# ---------------------------------------------------------------- results

class Steps:
    """Step results: PASS / FAIL (with the reason) / BLOCKED (a step it
    needs failed).  Every step runs unless blocked, so one run gives the
    whole pass/fail picture of a module."""

    def __init__(self):
        self.results = []
        self.failed = set()

    def run(self, name, fn, needs=(), desc=''):
        if desc:
            print('# %s: %s' % (name, desc), flush=True)
        blocked = [n for n in needs if n in self.failed]
        if blocked:
            self.results.append((name, 'BLOCKED', 'needs ' + ', '.join(blocked)))
            self.failed.add(name)
            print('BLOCKED %s (needs %s)' % (name, ', '.join(blocked)), flush=True)
            return None
        try:
            r = fn()
        except Exception as e:  # noqa: BLE001 - every failure is reported
            reason = '%s: %s' % (type(e).__name__, e)
            self.results.append((name, 'FAIL', reason))
            self.failed.add(name)
            print('FAIL    %s: %s' % (name, reason), flush=True)
            if os.environ.get('TP_BARBICAN_TRACE'):
                traceback.print_exc()
            return None
        self.results.append((name, 'PASS', ''))
        print('PASS    %s' % name, flush=True)
        return r

    def summary(self):
        n_fail = sum(1 for r in self.results if r[1] != 'PASS')
        print('# %d steps, %d passed, %d failed or blocked'
              % (len(self.results), len(self.results) - n_fail, n_fail))
        return n_fail == 0


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def expect_hsm_error(fn, rv, what):
    """fn must raise Barbican's PKCS#11 exception carrying exactly rv."""
    from barbican.common import exception
    try:
        fn()
    except exception.PKCS11Exception as e:
        got = hsm_rv(e)
        check(got == rv, '%s: expected %s, got %s (%s)'
              % (what, rvname(rv), rvname(got) if got is not None else '-', e))
        return
    raise AssertionError('%s: expected %s, but it succeeded' % (what, rvname(rv)))


# ---------------------------------------------------------------- backends

class Backend:
    """Where the token lives: its library, environment, and how the
    administrator initializes it (pkcs11-tool, as documented)."""

    def __init__(self, kind, pin, work, lease=None):
        self.kind = kind
        self.pin = pin
        self.work = work
        self.env = {}
        if kind == 'softhsm':
            if not os.path.exists(SOFTHSM_LIB):
                skip_or_fail_missing('SoftHSM2 (%s)' % SOFTHSM_LIB)
            if not pin:
                raise SystemExit('SoftHSM2 has no "pin": false mode')
            self.lib = SOFTHSM_LIB
            tokdir = os.path.join(work, 'softhsm-tokens')
            os.makedirs(tokdir)
            conf = os.path.join(work, 'softhsm2.conf')
            with open(conf, 'w') as f:
                f.write('directories.tokendir = %s\nobjectstore.backend = file\n'
                        'log.level = ERROR\n' % tokdir)
            self.env['SOFTHSM2_CONF'] = conf
            self.init_slot = 0
        else:
            self.lib = os.environ.get('TANG_PKCS11_MODULE')
            for v in ('TANG_URL', 'TANG_THP', 'TANG_CTL'):
                if not os.environ.get(v):
                    raise SystemExit('%s is not set: run under tests/fixtures/with-tangd' % v)
            if not self.lib:
                raise SystemExit('TANG_PKCS11_MODULE is not set: run through meson test')
            self.store = os.path.join(work, 'store')
            os.makedirs(self.store, mode=0o700)
            tok = {
                'label': TOKEN_LABEL,
                'tang': {'url': os.environ['TANG_URL'], 'thp': os.environ['TANG_THP']},
                'store': self.store,
                'pin': pin,
                'timeout': 5,
            }
            if lease is not None:
                tok['lease'] = lease
            self.conf = os.path.join(work, 'tang-pkcs11.conf')
            with open(self.conf, 'w') as f:
                json.dump({'tokens': [tok]}, f, indent=1)
            self.env['TANG_PKCS11_CONF'] = self.conf
            # The configuration without "lease", for the capability probe:
            # main's config parser rejects the key that comes with the store.
            tok.pop('lease', None)
            self.conf_nolease = os.path.join(work, 'tang-pkcs11-nolease.conf')
            with open(self.conf_nolease, 'w') as f:
                json.dump({'tokens': [tok]}, f, indent=1)
            self.init_slot = 1
        os.environ.update(self.env)

    def pkcs11_tool(self, *args):
        if not shutil.which('pkcs11-tool'):
            skip_or_fail_missing('pkcs11-tool (Debian package opensc)')
        cmd = ['pkcs11-tool', '--module', self.lib] + list(args)
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=120)
        if p.returncode != 0:
            raise AssertionError('%s: exit %d: %s' % (' '.join(cmd), p.returncode, p.stdout.strip()))
        return p.stdout

    def init_token(self):
        """C_InitToken (+ C_InitPIN on a PIN token) through pkcs11-tool."""
        self.pkcs11_tool('--slot', str(self.init_slot), '--init-token',
                         '--label', TOKEN_LABEL, '--so-pin', SO_PIN)
        if self.pin:
            self.pkcs11_tool('--token-label', TOKEN_LABEL, '--login', '--login-type', 'so',
                             '--so-pin', SO_PIN, '--init-pin', '--new-pin', USER_PIN)


# ------------------------------------------------- raw PKCS#11 (probe etc.)

def raw_ffi():
    """Barbican's own cffi declarations, plus what the harness needs besides
    (C_CreateObject for known-answer keys, C_InitToken/C_InitPIN for the
    capability probe)."""
    from barbican.plugin.crypto import pkcs11
    ffi = pkcs11.build_ffi()
    ffi.cdef("""
    CK_RV C_CreateObject(CK_SESSION_HANDLE, CK_ATTRIBUTE *, CK_ULONG, CK_OBJECT_HANDLE *);
    CK_RV C_InitToken(CK_SLOT_ID, CK_UTF8CHAR_PTR, CK_ULONG, CK_UTF8CHAR_PTR);
    CK_RV C_InitPIN(CK_SESSION_HANDLE, CK_UTF8CHAR_PTR, CK_ULONG);
    CK_RV C_Logout(CK_SESSION_HANDLE);
    """)
    return ffi


# What Barbican (and the administrator's pkcs11-tool) call, with arguments
# that a real implementation rejects without side effects (an invalid
# session handle or slot); a stub answers CKR_FUNCTION_NOT_SUPPORTED.
CAPABILITY_CALLS = [
    ('C_InitToken', lambda f, l: l.C_InitToken(0xDEAD, b'x', 1, b'x' * 32)),
    ('C_InitPIN', lambda f, l: l.C_InitPIN(0xDEAD, b'x', 1)),
    ('C_Login', lambda f, l: l.C_Login(0xDEAD, 1, b'x', 1)),
    ('C_SeedRandom', lambda f, l: l.C_SeedRandom(0xDEAD, b'x', 1)),
    ('C_GenerateRandom', lambda f, l: l.C_GenerateRandom(0xDEAD, f.new('CK_BYTE[1]'), 1)),
    ('C_GenerateKey', lambda f, l: l.C_GenerateKey(0xDEAD, f.new('CK_MECHANISM *'), f.NULL, 0,
                                                   f.new('CK_OBJECT_HANDLE *'))),
    ('C_WrapKey', lambda f, l: l.C_WrapKey(0xDEAD, f.new('CK_MECHANISM *'), 1, 2, f.NULL,
                                           f.new('CK_ULONG *'))),
    ('C_UnwrapKey', lambda f, l: l.C_UnwrapKey(0xDEAD, f.new('CK_MECHANISM *'), 1, b'x', 1,
                                               f.NULL, 0, f.new('CK_OBJECT_HANDLE *'))),
    ('C_EncryptInit', lambda f, l: l.C_EncryptInit(0xDEAD, f.new('CK_MECHANISM *'), 1)),
    ('C_DecryptInit', lambda f, l: l.C_DecryptInit(0xDEAD, f.new('CK_MECHANISM *'), 1)),
    ('C_SignInit', lambda f, l: l.C_SignInit(0xDEAD, f.new('CK_MECHANISM *'), 1)),
    ('C_Sign', lambda f, l: l.C_Sign(0xDEAD, b'x', 1, f.new('CK_BYTE[32]'), f.new('CK_ULONG *', 32))),
    ('C_VerifyInit', lambda f, l: l.C_VerifyInit(0xDEAD, f.new('CK_MECHANISM *'), 1)),
    ('C_Verify', lambda f, l: l.C_Verify(0xDEAD, b'x', 1, b'x', 1)),
    ('C_DestroyObject', lambda f, l: l.C_DestroyObject(0xDEAD, 1)),
    ('C_FindObjectsInit', lambda f, l: l.C_FindObjectsInit(0xDEAD, f.NULL, 0)),
]


def missing_functions(lib_path, conf_path=None):
    """Names of the functions the module answers CKR_FUNCTION_NOT_SUPPORTED,
    or raises when the module cannot even be initialized."""
    ffi = raw_ffi()
    env_before = os.environ.get('TANG_PKCS11_CONF')
    if conf_path:
        os.environ['TANG_PKCS11_CONF'] = conf_path
    try:
        lib = ffi.dlopen(lib_path)
        rv = lib.C_Initialize(ffi.NULL)
        if rv not in (0, 0x191):
            raise AssertionError('C_Initialize: %s' % rvname(rv))
        missing = [name for name, call in CAPABILITY_CALLS if call(ffi, lib) == 0x54]
        lib.C_Finalize(ffi.NULL)
        return missing
    finally:
        if conf_path:
            if env_before is None:
                os.environ.pop('TANG_PKCS11_CONF', None)
            else:
                os.environ['TANG_PKCS11_CONF'] = env_before


def preflight(backend):
    if backend.kind != 'tang':
        return
    missing = missing_functions(backend.lib, backend.conf_nolease)
    if missing:
        print('SKIP: the module does not offer %s yet (CKR_FUNCTION_NOT_SUPPORTED); '
              'Barbican needs them (docs/barbican.md)' % ', '.join(missing))
        sys.exit(77)


# ------------------------------------------------------------ Barbican side

def need_barbican():
    # Only look: importing any barbican module parses the configuration
    # files under $HOME at once (barbican.common.config), so HOME must be
    # set up first.
    import importlib.util
    if importlib.util.find_spec('barbican') is None:
        skip_or_fail_missing('Barbican (Debian package python3-barbican) for %s'
                             % sys.executable)


def plugin_options(backend, variant, token, login=USER_PIN, labels=('mkek1', 'hmac1')):
    """[p11_crypto_plugin] for this backend, variant and token."""
    v = dict(VARIANTS[variant])
    lookup = v.pop('lookup', 'label')
    opts = {'library_path': backend.lib, 'login': login,
            'mkek_label': labels[0], 'hmac_label': labels[1]}
    if lookup == 'label':
        opts['token_labels'] = TOKEN_LABEL
    elif lookup == 'serial':
        opts['token_serial_number'] = token['serial']
    else:
        opts['slot_id'] = token['slot']
    for k, val in v.items():
        opts[k] = 'true' if val is True else 'false' if val is False else val
    return opts


def write_conf(path, opts, sql):
    lines = ['[DEFAULT]', 'sql_connection = %s' % sql, 'db_auto_create = true', '',
             '[p11_crypto_plugin]']
    lines += ['%s = %s' % (k, v) for k, v in opts.items()]
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')


class World:
    """The temporary Barbican installation: HOME with ~/.barbican/barbican.conf
    (what barbican-manage and Barbican's module-level CONF read), a sqlite
    database, and the in-process plugin configurations."""

    def __init__(self, backend, variant, pin_ok_login=USER_PIN):
        self.backend = backend
        self.variant = variant
        self.home = os.environ['HOME']
        self.sql = 'sqlite:///' + os.path.join(backend.work, 'barbican.sqlite')
        self.token = None
        self.login = pin_ok_login
        self.labels = ('mkek1', 'hmac1')

    def conf_path(self):
        return os.path.join(self.home, '.barbican', 'barbican.conf')

    def write(self, labels=None, login=None):
        if labels:
            self.labels = labels
        opts = plugin_options(self.backend, self.variant, self.token or {'serial': '', 'slot': 1},
                              login=self.login if login is None else login, labels=self.labels)
        write_conf(self.conf_path(), opts, self.sql)
        return opts

    def conf(self, login=None, labels=None):
        """A fresh ConfigOpts for a P11CryptoPlugin (Barbican's own option
        definitions, read from a file)."""
        from barbican.common import config
        from barbican.plugin.crypto import p11_crypto
        path = os.path.join(self.backend.work, 'plugin-%d.conf' % time.monotonic_ns())
        opts = plugin_options(self.backend, self.variant, self.token,
                              login=self.login if login is None else login,
                              labels=labels or self.labels)
        write_conf(path, opts, self.sql)
        c = config.new_config()
        p11_crypto.register_opts(c)
        c(args=[], project='barbican', default_config_files=[path])
        return c

    def plugin(self, **kw):
        from barbican.plugin.crypto import p11_crypto
        return p11_crypto.P11CryptoPlugin(self.conf(**kw))

    def manage(self, *args, expect_rc=0):
        """The real barbican-manage (Debian's barbican-common ships
        /usr/bin/barbican-manage = barbican.cmd.barbican_manage:main; without
        that package the same entry point is run)."""
        exe = shutil.which('barbican-manage')
        cmd = [exe] if exe else [sys.executable, '-c',
                                 'import sys; from barbican.cmd.barbican_manage import main; '
                                 'sys.argv[0] = "barbican-manage"; sys.exit(main())']
        cmd += list(args)
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=300)
        out = p.stdout.strip()
        print('  $ barbican-manage %s -> %d: %s' % (' '.join(args), p.returncode,
                                                   out.replace('\n', '\n    ')))
        check(p.returncode == expect_rc, 'barbican-manage %s: exit %d, expected %d'
              % (' '.join(args), p.returncode, expect_rc))
        return out


def read_token(backend):
    """Slot id and serial of the token labelled TOKEN_LABEL, read the way
    Barbican reads them (C_GetSlotList + C_GetTokenInfo, blank-stripped)."""
    ffi = raw_ffi()
    lib = ffi.dlopen(backend.lib)
    rv = lib.C_Initialize(ffi.NULL)
    check(rv in (0, 0x191), 'C_Initialize: %s' % rvname(rv))
    try:
        n = ffi.new('CK_ULONG *')
        check(lib.C_GetSlotList(1, ffi.NULL, n) == 0, 'C_GetSlotList')
        slots = ffi.new('CK_SLOT_ID[%d]' % n[0])
        check(lib.C_GetSlotList(1, slots, n) == 0, 'C_GetSlotList')
        for s in slots:
            ti = ffi.new('CK_TOKEN_INFO *')
            rv = lib.C_GetTokenInfo(s, ti)
            check(rv == 0, 'C_GetTokenInfo(%d): %s' % (s, rvname(rv)))
            label = ffi.string(ti.label).decode().strip()
            if label == TOKEN_LABEL:
                return {'slot': int(s), 'serial': ffi.string(ti.serialNumber).decode().strip(),
                        'flags': int(ti.flags)}
        raise AssertionError('no token labelled %r' % TOKEN_LABEL)
    finally:
        lib.C_Finalize(ffi.NULL)


# -------------------------------------------------------------- scenario

def db_setup():
    from barbican.model import repositories
    repositories.setup_database_engine_and_factory()


def bind_project(plugin, external_id):
    """Barbican's own binding path (store_crypto._find_or_create_kek_objects):
    a Project row, a KEKDatum row, plugin.bind_kek_metadata, saved."""
    from barbican.model import models, repositories
    from barbican.plugin import store_crypto
    proj = models.Project()
    proj.external_id = external_id
    repositories.get_project_repository().create_from(proj)
    repositories.commit()
    kek_datum, dto = store_crypto._find_or_create_kek_objects(plugin, proj)
    repositories.commit()
    return kek_datum, dto


def kek_meta_from_db(kek_label):
    from barbican.model import models, repositories
    from barbican.plugin.crypto import base
    s = repositories.get_session()
    kd = s.query(models.KEKDatum).filter_by(kek_label=kek_label).one()
    dto = base.KEKMetaDTO(kd)
    repositories.commit()
    return dto


def dto_from(d):
    """A KEKMetaDTO from a plain dict (what another process gets from the DB)."""
    from barbican.model import models
    from barbican.plugin.crypto import base
    kd = models.KEKDatum()
    for k in ('kek_label', 'plugin_name', 'algorithm', 'bit_length', 'mode', 'plugin_meta'):
        setattr(kd, k, d[k])
    return base.KEKMetaDTO(kd)


def dto_dict(dto):
    return {k: getattr(dto, k) for k in ('kek_label', 'plugin_name', 'algorithm',
                                         'bit_length', 'mode', 'plugin_meta')}


def check_kek_meta(world, dto, labels):
    meta = json.loads(dto.plugin_meta)
    check(dto.algorithm == 'AES' and dto.bit_length == 256 and dto.mode == 'CBC',
          'kek meta: %s/%s/%s' % (dto.algorithm, dto.bit_length, dto.mode))
    check(meta['mkek_label'] == labels[0] and meta['hmac_label'] == labels[1],
          'kek meta labels: %s' % meta)
    iv = base64.b64decode(meta['iv'])
    wk = base64.b64decode(meta['wrapped_key'])
    mac = base64.b64decode(meta['hmac'])
    check(len(iv) == 16, 'wrap IV is %d bytes, expected 16' % len(iv))
    # CKM_AES_CBC_PAD of a 32-byte key: 32 + one block of padding.
    want = 40 if os.environ.get('TP_BARBICAN_SHIM') == '1' else 48  # RFC 5649 in the shim
    check(len(wk) == want, 'wrapped 32-byte KEK is %d bytes, expected %d' % (len(wk), want))
    mac_len = 8 if VARIANTS[world.variant].get('hmac_keywrap_mechanism') == 'CKM_AES_MAC' else 32
    check(len(mac) == mac_len, 'KEK MAC is %d bytes, expected %d' % (len(mac), mac_len))


def encrypt_roundtrip(world, plugin, dto, pt, project='p'):
    from barbican.plugin.crypto import base
    r = plugin.encrypt(base.EncryptDTO(pt), dto, project)
    ext = json.loads(r.kek_meta_extended)
    iv = base64.b64decode(ext['iv'])
    gcm = VARIANTS[world.variant].get('encryption_mechanism') == 'CKM_AES_GCM'
    check(ext['mechanism'] == ('CKM_AES_GCM' if gcm else 'CKM_AES_CBC'),
          'mechanism %s' % ext['mechanism'])
    if gcm:
        check(len(iv) == 12, 'GCM IV %d bytes' % len(iv))
        check(len(r.cypher_text) == len(pt) + 16,
              'GCM ct of %d bytes is %d bytes' % (len(pt), len(r.cypher_text)))
    else:
        check(len(iv) == 16, 'CBC IV %d bytes' % len(iv))
        check(len(r.cypher_text) == (len(pt) // 16 + 1) * 16,
              'CBC ct of %d bytes is %d bytes' % (len(pt), len(r.cypher_text)))
    back = plugin.decrypt(base.DecryptDTO(r.cypher_text), dto, r.kek_meta_extended, project)
    check(back == pt, 'decrypt(encrypt(%d bytes)) differs' % len(pt))
    return r


def scenario(backend, variant):
    steps = Steps()
    world = World(backend, variant)
    state = {}

    def init_token():
        backend.init_token()
        world.token = read_token(backend)
        print('  token: slot %d, serial %r, flags 0x%x'
              % (world.token['slot'], world.token['serial'], world.token['flags']))
        world.write()
    steps.run('init-token', init_token, desc='C_InitToken (+ C_InitPIN) through pkcs11-tool')

    def gen_keys():
        out = world.manage('hsm', 'gen_mkek')
        check('MKEK successfully generated!' in out, 'gen_mkek output')
        out = world.manage('hsm', 'gen_hmac')
        check('HMAC successfully generated!' in out, 'gen_hmac output')
    steps.run('gen-keys', gen_keys, needs=['init-token'], desc='barbican-manage hsm gen_mkek, gen_hmac')
    KEYS = 'gen-keys'

    def check_keys():
        check('Key labeled mkek1 found!' in world.manage('hsm', 'check_mkek'), 'check_mkek')
        check('Key labeled hmac1 found!' in world.manage('hsm', 'check_hmac'), 'check_hmac')
        out = world.manage('hsm', 'check_mkek', '--label', 'nosuchkey', expect_rc=1)
        check('Label nosuchkey is not set.' in out, 'check_mkek of a missing label')
        # A second gen_mkek with the same label is refused (the lookup finds it).
        out = world.manage('hsm', 'gen_mkek', expect_rc=1)
        check('The label mkek1 already exists!' in out, 'gen_mkek twice')
    steps.run('check-keys', check_keys, needs=[KEYS], desc='barbican-manage hsm check_mkek, check_hmac')

    def wrong_pin():
        out = world.manage('hsm', 'check_mkek', '--passphrase', WRONG_PIN,
                           expect_rc=1 if backend.pin else 0)
        if backend.pin:
            check('0xa0 CKR_PIN_INCORRECT' in out, 'wrong PIN: %s' % out)
        else:
            check('Key labeled mkek1 found!' in out, 'pin:false ignores the PIN: %s' % out)
        # The right PIN still works afterwards (one wrong try does not lock).
        check('Key labeled mkek1 found!' in world.manage('hsm', 'check_mkek'), 'right PIN after a wrong one')
    steps.run('wrong-pin', wrong_pin, needs=[KEYS],
              desc='barbican-manage with a wrong PIN: %s' % ('CKR_PIN_INCORRECT' if backend.pin else 'ignored on a "pin": false token'))

    def make_plugin():
        db_setup()
        state['plugin'] = world.plugin()
    steps.run('plugin', make_plugin, needs=[KEYS],
              desc='P11CryptoPlugin(conf): initialize, find the token, log in, RNG self-test, find the master keys')
    PLUGIN = 'plugin'

    def bind():
        p = state['plugin']
        state['projects'] = {}
        for ext in ('project-a', 'project-b'):
            kd, dto = bind_project(p, ext)
            check(kd.bind_completed, 'bind_completed')
            check_kek_meta(world, dto, ('mkek1', 'hmac1'))
            state['projects'][ext] = dto
        # A bound DTO is left alone (binding is idempotent).
        dto = state['projects']['project-a']
        before = dto.plugin_meta
        check(p.bind_kek_metadata(dto).plugin_meta == before, 'rebinding changed the metadata')
    steps.run('bind', bind, needs=[PLUGIN],
              desc='bind_kek_metadata: pKEK generated, wrapped by the MKEK, MACed; KEKDatum in sqlite')
    BIND = 'bind'

    def sizes():
        p = state['plugin']
        stored = []
        for ext, dto in state['projects'].items():
            for n in SIZES:
                pt = os.urandom(n)
                r = encrypt_roundtrip(world, p, dto, pt, ext)
                stored.append({'kek': dto_dict(dto), 'ct': base64.b64encode(r.cypher_text).decode(),
                               'ext': r.kek_meta_extended,
                               'pt': base64.b64encode(pt).decode(), 'project': ext})
            # Two encryptions of the same secret differ (fresh IV each time).
            a = p.encrypt(base_dto('EncryptDTO', b'same'), dto, ext)
            b = p.encrypt(base_dto('EncryptDTO', b'same'), dto, ext)
            check(a.cypher_text != b.cypher_text and a.kek_meta_extended != b.kek_meta_extended,
                  'two encryptions are identical')
        state['stored'] = stored
    steps.run('encrypt-decrypt', sizes, needs=[BIND],
              desc='encrypt/decrypt secrets of %s bytes in 2 projects' % ','.join(map(str, SIZES)))
    SIZES_STEP = 'encrypt-decrypt'

    def gen_symmetric():
        from barbican.plugin.crypto import base
        p = state['plugin']
        dto = state['projects']['project-a']
        seen = set()
        for bits in (128, 192, 256, 512):
            r = p.generate_symmetric(base.GenerateDTO('AES', bits, 'CBC'), dto, 'project-a')
            key = p.decrypt(base.DecryptDTO(r.cypher_text), dto, r.kek_meta_extended, 'project-a')
            check(len(key) == bits // 8, 'generated %d bits, got %d bytes' % (bits, len(key)))
            check(key not in seen and key != b'\0' * len(key), 'generated key repeats or is zero')
            seen.add(key)
            state.setdefault('stored', []).append(
                {'kek': dto_dict(dto), 'ct': base64.b64encode(r.cypher_text).decode(),
                 'ext': r.kek_meta_extended, 'pt': base64.b64encode(key).decode(),
                 'project': 'project-a'})
    steps.run('generate-symmetric', gen_symmetric, needs=[BIND], desc='generate_symmetric of 128/192/256/512 bits')

    def tamper():
        from barbican.plugin.crypto import base
        p = state['plugin']
        dto = state['projects']['project-b']
        # A bad MAC on KEK metadata the plugin has not cached: C_Verify says
        # CKR_SIGNATURE_INVALID (the plugin re-initializes once and retries).
        meta = json.loads(dto.plugin_meta)
        mac = bytearray(base64.b64decode(meta['hmac']))
        mac[0] ^= 1
        meta['hmac'] = base64.b64encode(bytes(mac)).decode()
        bad = dto_from(dict(dto_dict(dto), kek_label=dto.kek_label + '-tampered',
                            plugin_meta=json.dumps(meta)))
        expect_hsm_error(lambda: p.encrypt(base.EncryptDTO(b'x'), bad, 'project-b'),
                         0xc0, 'KEK metadata with a bad MAC')
        if VARIANTS[variant].get('encryption_mechanism') == 'CKM_AES_GCM':
            r = p.encrypt(base.EncryptDTO(b'attack at dawn'), dto, 'project-b')
            ct = bytearray(r.cypher_text)
            ct[-1] ^= 1
            expect_hsm_error(lambda: p.decrypt(base.DecryptDTO(bytes(ct)), dto, r.kek_meta_extended,
                                               'project-b'),
                             0x40, 'GCM ciphertext with a bad tag')
        # And the plugin still works after those errors and re-initializations.
        encrypt_roundtrip(world, p, dto, b'still here', 'project-b')
    steps.run('tamper', tamper, needs=[SIZES_STEP], desc='tampered KEK MAC -> CKR_SIGNATURE_INVALID%s; the plugin still works' %
              (', tampered GCM tag -> CKR_ENCRYPTED_DATA_INVALID'
               if VARIANTS[variant].get('encryption_mechanism') == 'CKM_AES_GCM' else ''))

    def retry():
        p = state['plugin']
        dto = state['projects']['project-a']
        encrypt_roundtrip(world, p, dto, b'warm the cache', 'project-a')
        cached = p.pkek_cache[dto.kek_label].kek
        old_pkcs11 = p.pkcs11
        # Destroy the cached pKEK behind the plugin's back: the next encrypt
        # fails (CKR_KEY_HANDLE_INVALID), the plugin calls C_Finalize and
        # C_Initialize, logs in again, finds its master keys, unwraps the
        # pKEK again and the retry succeeds.
        s = p.pkcs11.get_session()
        p.pkcs11.destroy_object(cached, s)
        p.pkcs11.return_session(s)
        rec = LogCapture('barbican.plugin.crypto.p11_crypto')
        try:
            encrypt_roundtrip(world, p, dto, b'after the retry', 'project-a')
        finally:
            rec.stop()
        check(p.pkcs11 is not old_pkcs11, 'the plugin did not re-initialize')
        check(any('Reinitializing PKCS#11 library' in m for m in rec.messages),
              'no "Reinitializing" warning: %s' % rec.messages)
        check(any('CKR_KEY_HANDLE_INVALID' in m or 'CKR_OBJECT_HANDLE_INVALID' in m
                  for m in rec.messages),
              'the failed call was not CKR_KEY_HANDLE_INVALID: %s' % rec.messages)
        # Handles of the previous initialization are dead, not reused for
        # other objects.
        new_handle = p.pkek_cache[dto.kek_label].kek
        s = p.pkcs11.get_session()
        try:
            expect_hsm_error(lambda: p.pkcs11.encrypt(cached, b'x' * 16, s), 0x60,
                             'a key handle from before C_Finalize')
        finally:
            p.pkcs11.return_session(s)
        print('  pKEK handle before re-initialization %d, after %d' % (cached, new_handle))
    steps.run('retry', retry, needs=[SIZES_STEP],
              desc='after an error C_Finalize + C_Initialize, the retry succeeds; old handles are dead')

    def threads():
        from barbican.plugin.crypto import base
        from barbican.model import models
        p = state['plugin']
        errors = []
        shared = state['projects']['project-b']

        def worker(i):
            try:
                kd = models.KEKDatum()
                kd.kek_label = 'thread-%d-%s' % (i, os.urandom(4).hex())
                kd.plugin_name = 'barbican.plugin.crypto.p11_crypto.P11CryptoPlugin'
                dto = p.bind_kek_metadata(base.KEKMetaDTO(kd))
                for j in range(15):
                    for d in (dto, shared):
                        pt = os.urandom(1 + (i * 37 + j * 11) % 300)
                        encrypt_roundtrip(world, p, d, pt, 't')
            except Exception as e:  # noqa: BLE001
                errors.append('thread %d: %s: %s' % (i, type(e).__name__, e))
        ts = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(300)
        check(not any(t.is_alive() for t in ts), 'threads still running after 300 s')
        check(not errors, '; '.join(errors))
    steps.run('threads', threads, needs=[BIND], desc='8 threads at once: bind + 240 encrypt/decrypt round trips')

    def threads_reinit():
        # Barbican re-initializes in whichever thread saw an error, while
        # the other threads are inside PKCS#11 calls (no lock): C_Finalize
        # concurrent with everything else.  The module must not crash or
        # hang; calls caught in between fail with a clean CK_RV (and make
        # their thread re-initialize too), and the plugin works afterwards.
        from barbican.common import exception
        p = state['plugin']
        dto = state['projects']['project-b']
        # What a call caught by another thread's C_Finalize / C_Initialize /
        # C_Login may get: not initialized, session or key handle invalid,
        # operation not initialized, and (two threads logging in at once)
        # already logged in.
        allowed = {0x190, 0xb3, 0xb0, 0x60, 0x82, 0x91, 0x100}
        errors, odd, done, barbican_races = [], [], [], []
        stop = threading.Event()

        def worker(i):
            n = 0
            while not stop.is_set():
                n += 1
                try:
                    encrypt_roundtrip(world, p, dto, os.urandom(1 + (i * 13 + n) % 100), 't')
                except exception.PKCS11Exception as e:
                    rv = hsm_rv(e)
                    (errors if rv in allowed else odd).append('%s' % e)
                except Exception as e:  # noqa: BLE001
                    # Barbican's own races, not the module's: its
                    # re-initialization sets self.pkcs11 and the caching
                    # session to None and clears its caches while other
                    # threads use them (AttributeError on None, a None
                    # handle given to cffi: TypeError, "already in the
                    # cache": ValueError).
                    barbican_races.append('%s: %s' % (type(e).__name__, e))
            done.append(n)
        ts = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(6)]
        for t in ts:
            t.start()
        for _ in range(3):
            time.sleep(0.5)
            try:
                p._reinitialize_pkcs11()     # what Barbican does after an error
            except exception.PKCS11Exception as e:
                errors.append('reinit: %s' % e)
        stop.set()
        for t in ts:
            t.join(300)
        check(not any(t.is_alive() for t in ts), 'threads still running after 300 s')
        print('  %d round trips; %d failed cleanly during re-initializations: %s; '
              '%d hit Barbican\'s own races (%s)'
              % (sum(done), len(errors), ', '.join(sorted(set(rvname(hsm_rv(e) or 0) for e in errors))),
                 len(barbican_races), ', '.join(sorted(set(r.split(':')[0] for r in barbican_races)))))
        check(not odd, 'unexpected failures: %s' % '; '.join(odd[:5]))
        try:
            encrypt_roundtrip(world, p, dto, b'after concurrent re-initializations', 'project-b')
        except exception.PKCS11Exception as e:
            # Barbican 15.0.1 can end with the library finalized by one
            # thread while its object is still in use: its retry then calls
            # C_Finalize, gets CKR_CRYPTOKI_NOT_INITIALIZED and gives up, on
            # every request from then on.  That is Barbican's; forget its
            # library object (as a restart would) and check the module.
            check(hsm_rv(e) == 0x190, 'after the re-initializations: %s' % e)
            print('  Barbican was left with a finalized library (its own race); resetting it')
            p.pkcs11 = None
            encrypt_roundtrip(world, p, dto, b'after concurrent re-initializations', 'project-b')
    # Opt-in (TP_BARBICAN_REINIT_RACE=1): Barbican 15.0.1's re-initialization
    # beside busy threads runs into Barbican's own races and can deadlock in
    # Barbican's locks (docs/barbican.md); the module side of it is checked
    # with raw calls in `probe` (finalize_under_load).
    if os.environ.get('TP_BARBICAN_REINIT_RACE') == '1':
        steps.run('threads-reinit', threads_reinit, needs=[BIND],
                  desc='6 threads at work while Barbican re-initializes 3 times (C_Finalize under load)')

    def second_process():
        path = os.path.join(backend.work, 'stored.json')
        with open(path, 'w') as f:
            json.dump({'stored': state['stored'], 'token': world.token, 'variant': variant,
                       'options': VARIANTS[variant],
                       'labels': list(world.labels)}, f)
        run_child('decrypt-stored', path)
    steps.run('second-process', second_process, needs=[SIZES_STEP], desc='a second process decrypts what the first stored')

    def rewrap():
        # Master key rotation: new MKEK and HMAC key, the configuration
        # names them, `barbican-manage hsm rewrap_pkek` rewraps every
        # project KEK in the database.
        world.manage('hsm', 'gen_mkek', '--label', 'mkek2')
        world.manage('hsm', 'gen_hmac', '--label', 'hmac2')
        world.write(labels=('mkek2', 'hmac2'))
        before = {ext: kek_meta_from_db(d.kek_label).plugin_meta for ext, d in state['projects'].items()}
        out = world.manage('hsm', 'rewrap_pkek', '--dry-run')
        check('Would have unwrapped key with mkek1 and rewrapped with mkek2' in out, 'dry run output')
        for ext, d in state['projects'].items():
            check(kek_meta_from_db(d.kek_label).plugin_meta == before[ext], 'dry run changed the DB')
        out = world.manage('hsm', 'rewrap_pkek')
        check('Error occurred' not in out, 'rewrap_pkek reported an error')
        for ext, d in state['projects'].items():
            dto = kek_meta_from_db(d.kek_label)
            check(dto.plugin_meta != before[ext], 'KEK of %s not rewrapped' % ext)
            check_kek_meta(world, dto, ('mkek2', 'hmac2'))
        # A fresh process configured with the new master keys reads every
        # stored secret with the rewrapped KEKs from the database.
        path = os.path.join(backend.work, 'stored-rewrapped.json')
        with open(path, 'w') as f:
            json.dump({'stored': state['stored'], 'token': world.token, 'variant': variant,
                       'options': VARIANTS[variant],
                       'labels': ['mkek2', 'hmac2'], 'from_db': True}, f)
        run_child('decrypt-stored', path)
    steps.run('rewrap', rewrap, needs=[SIZES_STEP],
              desc='master key rotation: barbican-manage hsm rewrap_pkek (--dry-run, then for real; sqlite)')

    if 'plugin' in state and state['plugin'] is not None:
        try:
            state['plugin'].pkcs11.finalize()
        except Exception:  # noqa: BLE001
            pass
    return steps


def base_dto(name, arg):
    from barbican.plugin.crypto import base
    return getattr(base, name)(arg)


class LogCapture:
    """Collects the messages of one Python logger (Barbican logs through
    oslo.log, i.e. the standard logging module)."""

    def __init__(self, name):
        import logging
        self.messages = []
        outer = self

        class H(logging.Handler):
            def emit(self, record):
                outer.messages.append(record.getMessage())
        self.handler = H()
        self.logger = logging.getLogger(name)
        self.logger.addHandler(self.handler)

    def stop(self):
        self.logger.removeHandler(self.handler)


def run_child(*args):
    cmd = [sys.executable, os.path.abspath(__file__)] + list(args)
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
    print('  child: ' + p.stdout.strip().replace('\n', '\n  child: '))
    check(p.returncode == 0, 'child %s exited %d' % (args[0], p.returncode))


def child_decrypt_stored(path):
    """Another process: its own plugin instance decrypts stored secrets."""
    from barbican.plugin.crypto import base
    with open(path) as f:
        st = json.load(f)
    backend = Backend.__new__(Backend)
    backend.lib = os.environ.get('TP_BARBICAN_LIB')
    backend.work = os.environ['TP_BARBICAN_WORK']
    world = World.__new__(World)
    world.backend = backend
    world.variant = st['variant']
    VARIANTS[st['variant']] = st['options']   # with the parent's --set options
    world.token = st['token']
    world.login = USER_PIN
    world.labels = tuple(st['labels'])
    world.sql = os.environ['TP_BARBICAN_SQL']
    if st.get('from_db'):
        db_setup()
    p = world.plugin()
    n = 0
    for s in st['stored']:
        dto = kek_meta_from_db(s['kek']['kek_label']) if st.get('from_db') else dto_from(s['kek'])
        pt = p.decrypt(base.DecryptDTO(base64.b64decode(s['ct'])), dto, s['ext'], s['project'])
        if pt != base64.b64decode(s['pt']):
            print('FAIL: secret %d of %s differs' % (n, s['project']))
            return 1
        n += 1
    print('decrypted %d secrets (master keys %s)' % (n, '/'.join(world.labels)))
    p.pkcs11.finalize()
    return 0


# ------------------------------------------------------------------ outage

def outage(backend, lease):
    """A plugin instance keeps running while tangd goes away and comes back."""
    steps = Steps()
    world = World(backend, 'defaults')
    state = {}
    ctl = os.environ['TANG_CTL']

    def setup():
        backend.init_token()
        world.token = read_token(backend)
        world.write()
        world.manage('hsm', 'gen_mkek')
        world.manage('hsm', 'gen_hmac')
        db_setup()
        state['plugin'] = world.plugin()
        kd, dto = bind_project(state['plugin'], 'project-a')
        state['dto'] = dto
        state['r'] = encrypt_roundtrip(world, state['plugin'], dto, b'before the outage', 'project-a')
    steps.run('setup', setup, desc='token, master keys, plugin, a project bound, a secret stored')
    SETUP = 'setup'

    def stop():
        subprocess.run([ctl, 'stop'], check=True, timeout=60)
        # Within the lease the token keeps working (the root secret is
        # still held): a new project can be bound.
        bind_project(state['plugin'], 'project-during-lease')
    steps.run('within-lease', stop, needs=[SETUP], desc='tangd stopped; within the lease (%d s) binding still works' % lease)

    def expired():
        from barbican.plugin.crypto import base
        time.sleep(lease + 2)
        p = state['plugin']
        # After the lease the master keys are gone until Tang answers again:
        # binding a project (wrap with the MKEK) fails with the module's
        # error, and so does reading a secret (after the failure the plugin
        # finalized and re-initialized, which needs a login through Tang).
        expect_hsm_error(lambda: bind_project(p, 'project-during-outage'), 0x30,
                         'bind during the outage')
        expect_hsm_error(lambda: p.decrypt(base.DecryptDTO(state['r'].cypher_text), state['dto'],
                                           state['r'].kek_meta_extended, 'project-a'),
                         0x30, 'decrypt during the outage')
        log = os.environ.get('TANG_PKCS11_LOG')
        if log and os.path.exists(log):
            with open(log, errors='replace') as f:
                text = f.read()
            check(os.environ['TANG_URL'] in text, 'the module log does not name the server')
    steps.run('after-lease', expired, needs=[SETUP], desc='after the lease: bind and decrypt fail with CKR_DEVICE_ERROR')

    def back():
        from barbican.plugin.crypto import base
        from barbican.model import repositories
        repositories.rollback()
        from barbican.common import exception
        subprocess.run([ctl, 'start'], check=True, timeout=60)
        p = state['plugin']
        # The module waits a moment before it asks a server again after a
        # failed request (no request storms): poll, within a generous bound;
        # every failure until then must still be the module's error.
        deadline = time.monotonic() + 30
        attempts = 0
        while True:
            attempts += 1
            try:
                pt = p.decrypt(base.DecryptDTO(state['r'].cypher_text), state['dto'],
                               state['r'].kek_meta_extended, 'project-a')
                break
            except exception.PKCS11Exception as e:
                check(hsm_rv(e) == 0x30, 'while tangd comes back: %s' % e)
                check(time.monotonic() < deadline, 'not recovered 30 s after tangd is back: %s' % e)
                time.sleep(1)
        print('  recovered at attempt %d' % attempts)
        check(pt == b'before the outage', 'decrypt after the outage')
        kd, dto = bind_project(p, 'project-after-outage')
        encrypt_roundtrip(world, p, dto, b'after the outage', 'project-after-outage')
    steps.run('recovered', back, needs=[SETUP], desc='tangd back: the same plugin instance decrypts and binds again')
    return steps


# ------------------------------------------------------------------- probe

def probe(backend):
    """Barbican's PKCS#11 calls one by one, CK_RV against the contract."""
    from barbican.plugin.crypto import pkcs11 as P
    ffi = raw_ffi()
    lib = ffi.dlopen(backend.lib)
    rows = []
    keep = []

    def call(name, expect, fn, note=''):
        try:
            rv = fn()
        except Exception as e:  # noqa: BLE001
            rows.append((name, rvname(expect), 'exception %s' % e, False, note))
            return None
        ok = rv == expect
        rows.append((name, rvname(expect), rvname(rv), ok, note))
        return rv

    def attrs(lst):
        return P.PKCS11._build_attributes(Fake(ffi), [P.Attribute(t, v) for t, v in lst])

    def mech(m, param=None, plen=0):
        mp = ffi.new('CK_MECHANISM *')
        mp.mechanism = m
        if param is not None:
            mp.parameter = param
            mp.parameter_len = plen
        keep.append(param)
        return mp

    def gen(session, m, lst):
        a = attrs(lst)
        h = ffi.new('CK_OBJECT_HANDLE *')
        rv = lib.C_GenerateKey(session, mech(m), a.template, len(a.template), h)
        return rv, h[0]

    def find(session, lst):
        a = attrs(lst)
        rv = lib.C_FindObjectsInit(session, a.template, len(a.template))
        if rv:
            return rv, None
        hs = ffi.new('CK_OBJECT_HANDLE[2]')
        n = ffi.new('CK_ULONG *')
        rv = lib.C_FindObjects(session, hs, 2, n)
        lib.C_FindObjectsFinal(session)
        return rv, (hs[0] if rv == 0 and n[0] == 1 else None)

    def key_tmpl(token, label, ktype, length, enc=False, sign=False, wrap=False):
        lst = [(P.CKA_CLASS, P.CKO_SECRET_KEY), (P.CKA_KEY_TYPE, ktype), (P.CKA_VALUE_LEN, length),
               (P.CKA_TOKEN, token), (P.CKA_PRIVATE, True), (P.CKA_SENSITIVE, True),
               (P.CKA_ENCRYPT, enc), (P.CKA_DECRYPT, enc), (P.CKA_SIGN, sign), (P.CKA_VERIFY, sign),
               (P.CKA_WRAP, wrap), (P.CKA_UNWRAP, wrap), (P.CKA_EXTRACTABLE, not token)]
        if label:
            lst.append((P.CKA_LABEL, label))
        return lst

    out = {}
    stand_in = set()
    call('C_Initialize(NULL)', 0, lambda: lib.C_Initialize(ffi.NULL))
    n = ffi.new('CK_ULONG *')
    call('C_GetSlotList(TRUE, NULL)', 0, lambda: lib.C_GetSlotList(1, ffi.NULL, n))
    slots = ffi.new('CK_SLOT_ID[%d]' % max(n[0], 1))
    call('C_GetSlotList(TRUE, list)', 0, lambda: lib.C_GetSlotList(1, slots, n))
    slot = None
    for s in list(slots)[:n[0]]:
        ti = ffi.new('CK_TOKEN_INFO *')
        call('C_GetTokenInfo(slot %d)' % s, 0, lambda: lib.C_GetTokenInfo(s, ti))
        if ffi.string(ti.label).decode().strip() == TOKEN_LABEL:
            slot = s
            rows.append(('  token flags', '', hex(ti.flags), True,
                         'serial %r' % ffi.string(ti.serialNumber).decode()))
    if slot is None:
        rows.append(('token %r' % TOKEN_LABEL, 'present', 'absent', False, ''))
        return rows
    sh = ffi.new('CK_SESSION_HANDLE *')
    call('C_OpenSession(SERIAL|RW)', 0, lambda: lib.C_OpenSession(slot, 6, ffi.NULL, ffi.NULL, sh))
    s1 = sh[0]
    si = ffi.new('CK_SESSION_INFO *')
    call('C_GetSessionInfo', 0, lambda: lib.C_GetSessionInfo(s1, si))
    rows.append(('  session state', 'CKS_RW_PUBLIC_SESSION(2)', str(si.state), si.state == 2, ''))
    pin = USER_PIN.encode()
    call('C_Login(CKU_USER, right PIN)', 0, lambda: lib.C_Login(s1, 1, pin, len(pin)))
    call('C_OpenSession(SERIAL) second, read-only', 0,
         lambda: lib.C_OpenSession(slot, 4, ffi.NULL, ffi.NULL, sh))
    s2 = sh[0]
    call('C_GetSessionInfo(second)', 0, lambda: lib.C_GetSessionInfo(s2, si))
    rows.append(('  second session state', 'CKS_RO_USER_FUNCTIONS(1)', str(si.state), si.state == 1,
                 'login is token-wide'))
    seed = b'0123456789abcdef0123456789abcdef'
    call('C_SeedRandom(32 bytes)', 0, lambda: lib.C_SeedRandom(s1, seed, len(seed)))
    rnd = ffi.new('CK_BYTE[100]')
    call('C_GenerateRandom(100)', 0, lambda: lib.C_GenerateRandom(s1, rnd, 100))

    for name, ktype, m, sign, wrap, enc in (
            ('MKEK', P.CKK_AES, P.CKM_AES_KEY_GEN, False, True, True),
            ('HMAC key CKK_AES', P.CKK_AES, P.CKM_AES_KEY_GEN, True, False, False),
            ('HMAC key CKK_GENERIC_SECRET', P.CKK_GENERIC_SECRET, P.CKM_GENERIC_SECRET_KEY_GEN, True,
             False, False)):
        label = 'probe-' + name.split()[-1].lower() + '-' + os.urandom(3).hex()
        rv, h = gen(s1, m, key_tmpl(True, label, ktype, 32, enc=enc, sign=sign, wrap=wrap))
        mname = 'CKM_AES_KEY_GEN' if m == P.CKM_AES_KEY_GEN else 'CKM_GENERIC_SECRET_KEY_GEN'
        call('C_GenerateKey(%s, token %s)' % (mname, name), 0, lambda: rv)
        out[name] = h if rv == 0 else None
        if rv != 0:
            # A public session-object stand-in, so that the mechanisms below
            # are still exercised on a module without token objects/login.
            t = [x for x in key_tmpl(False, None, ktype, 32, enc=enc, sign=sign, wrap=wrap)
                 if x[0] not in (P.CKA_PRIVATE, P.CKA_EXTRACTABLE)] + [(P.CKA_PRIVATE, False),
                                                                       (P.CKA_EXTRACTABLE, False)]
            rv2, h2 = gen(s1, m, t)
            call('C_GenerateKey(%s, session public %s: stand-in)' % (mname, name), 0, lambda: rv2)
            out[name] = h2 if rv2 == 0 else None
            stand_in.add(name)
            continue
        # Barbican finds it again from another session: {CLASS, KEY_TYPE, LABEL}, max 2.
        rv, fh = find(s2, [(P.CKA_CLASS, P.CKO_SECRET_KEY), (P.CKA_KEY_TYPE, ktype), (P.CKA_LABEL, label)])
        call('C_FindObjects({CLASS,KEY_TYPE,LABEL}) %s, other session' % name, 0, lambda: rv,
             'found %s' % ('exactly one' if fh is not None else 'none or several'))
        if rv == 0 and fh is None:
            rows[-1] = rows[-1][:3] + (False, 'not exactly one match')
    mkek, hk_aes, hk_gen = out['MKEK'], out['HMAC key CKK_AES'], out['HMAC key CKK_GENERIC_SECRET']

    rv, pkek = gen(s1, P.CKM_AES_KEY_GEN, key_tmpl(False, None, P.CKK_AES, 32, enc=True))
    call('C_GenerateKey(CKM_AES_KEY_GEN, session pKEK, private, sensitive, extractable)', 0, lambda: rv)
    if rv != 0:
        t = [x for x in key_tmpl(False, None, P.CKK_AES, 32, enc=True) if x[0] != P.CKA_PRIVATE]
        rv, pkek = gen(s1, P.CKM_AES_KEY_GEN, t + [(P.CKA_PRIVATE, False)])
        call('C_GenerateKey(CKM_AES_KEY_GEN, session public pKEK: stand-in)', 0, lambda: rv)
    iv = ffi.new('CK_BYTE[16]', os.urandom(16))
    wlen = ffi.new('CK_ULONG *')
    wrapped = None
    if mkek is not None and rv == 0:
        r = call('C_WrapKey(CKM_AES_CBC_PAD, MKEK, pKEK, NULL) length', 0,
                 lambda: lib.C_WrapKey(s1, mech(P.CKM_AES_CBC_PAD, iv, 16), mkek, pkek, ffi.NULL, wlen))
        if r == 0:
            rows[-1] = rows[-1][:4] + ('length %d (48 expected)' % wlen[0],)
            wbuf = ffi.new('CK_BYTE[%d]' % wlen[0])
            r = call('C_WrapKey(CKM_AES_CBC_PAD, MKEK, pKEK)', 0,
                     lambda: lib.C_WrapKey(s1, mech(P.CKM_AES_CBC_PAD, iv, 16), mkek, pkek, wbuf, wlen))
            if r == 0:
                wrapped = bytes(ffi.buffer(wbuf, wlen[0]))
    data = ffi.new('CK_BYTE[]', b'iv and wrapped key' * 4)
    for mname, mval, key, klabel, maclen in (
            ('CKM_SHA256_HMAC', P.CKM_SHA256_HMAC, hk_aes, 'CKK_AES key', 32),
            ('CKM_SHA256_HMAC', P.CKM_SHA256_HMAC, hk_gen, 'CKK_GENERIC_SECRET key', 32),
            ('CKM_AES_MAC', P.CKM_AES_MAC, hk_aes, 'CKK_AES key', 8)):
        if key is None:
            continue
        r = call('C_SignInit(%s, %s)' % (mname, klabel), 0, lambda: lib.C_SignInit(s1, mech(mval), key))
        if r != 0:
            continue
        sig = ffi.new('CK_BYTE[32]')
        slen = ffi.new('CK_ULONG *', 32)
        r = call('C_Sign(%s, 32-byte buffer)' % mname, 0,
                 lambda: lib.C_Sign(s1, data, len(data) - 1, sig, slen))
        if r != 0:
            continue
        rows[-1] = rows[-1][:4] + ('%d-byte MAC (%d expected)' % (slen[0], maclen),)
        if slen[0] != maclen:
            rows[-1] = rows[-1][:3] + (False,) + rows[-1][4:]
        good = bytes(ffi.buffer(sig, slen[0]))
        call('C_VerifyInit(%s)' % mname, 0, lambda: lib.C_VerifyInit(s1, mech(mval), key))
        call('C_Verify(%s, good MAC)' % mname, 0, lambda: lib.C_Verify(s1, data, len(data) - 1, good, len(good)))
        bad = bytes([good[0] ^ 1]) + good[1:]
        call('C_VerifyInit(%s)' % mname, 0, lambda: lib.C_VerifyInit(s1, mech(mval), key))
        call('C_Verify(%s, bad MAC)' % mname, 0xc0,
             lambda: lib.C_Verify(s1, data, len(data) - 1, bad, len(bad)))
    unwrapped = None
    if wrapped is not None:
        a = attrs([(P.CKA_CLASS, P.CKO_SECRET_KEY), (P.CKA_KEY_TYPE, P.CKK_AES), (P.CKA_TOKEN, False),
                   (P.CKA_PRIVATE, True), (P.CKA_SENSITIVE, True), (P.CKA_ENCRYPT, True),
                   (P.CKA_DECRYPT, True), (P.CKA_EXTRACTABLE, True)])
        uh = ffi.new('CK_OBJECT_HANDLE *')
        r = call('C_UnwrapKey(CKM_AES_CBC_PAD, MKEK, template without VALUE_LEN)', 0,
                 lambda: lib.C_UnwrapKey(s1, mech(P.CKM_AES_CBC_PAD, iv, 16), mkek, wrapped, len(wrapped),
                                         a.template, len(a.template), uh))
        if r == 0:
            unwrapped = uh[0]
    key = unwrapped if unwrapped is not None else (pkek if pkek else None)
    if key:
        pt = os.urandom(48)
        civ = ffi.new('CK_BYTE[16]', os.urandom(16))
        r = call('C_EncryptInit(CKM_AES_CBC, 16-byte IV, %s)' % ('unwrapped pKEK' if unwrapped else 'pKEK'), 0,
                 lambda: lib.C_EncryptInit(s2, mech(P.CKM_AES_CBC, civ, 16), key))
        ct = ffi.new('CK_BYTE[48]')
        cl = ffi.new('CK_ULONG *', 48)
        if r == 0:
            call('C_Encrypt(CBC, exact-size output), other session', 0, lambda: lib.C_Encrypt(s2, pt, 48, ct, cl))
        r = call('C_DecryptInit(CKM_AES_CBC)', 0, lambda: lib.C_DecryptInit(s2, mech(P.CKM_AES_CBC, civ, 16), key))
        bk = ffi.new('CK_BYTE[48]')
        bl = ffi.new('CK_ULONG *', 48)
        if r == 0:
            call('C_Decrypt(CBC)', 0, lambda: lib.C_Decrypt(s2, bytes(ffi.buffer(ct, cl[0])), cl[0], bk, bl))
            rows.append(('  CBC round trip', 'equal', 'equal' if bytes(ffi.buffer(bk, bl[0])) == pt
                         else 'differs', bytes(ffi.buffer(bk, bl[0])) == pt, ''))
        giv = ffi.new('CK_BYTE[12]', os.urandom(12))
        gp = ffi.new('CK_AES_GCM_PARAMS *')
        gp.pIv = ffi.cast('char *', giv)
        gp.ulIvLen = 12
        gp.ulIvBits = 96
        gp.ulTagBits = 128
        pt = b'secret payload of 33 bytes......!'
        r = call('C_EncryptInit(CKM_AES_GCM, 48-byte CK_GCM_PARAMS with ulIvBits)', 0,
                 lambda: lib.C_EncryptInit(s2, mech(P.CKM_AES_GCM, gp, 48), key))
        gct = ffi.new('CK_BYTE[%d]' % (len(pt) + 16))
        gl = ffi.new('CK_ULONG *', len(pt) + 16)
        if r == 0 and call('C_Encrypt(GCM, ct||tag)', 0, lambda: lib.C_Encrypt(s2, pt, len(pt), gct, gl)) == 0:
            g = bytes(ffi.buffer(gct, gl[0]))
            for what, blob, want in (('good tag', g, 0), ('bad tag', g[:-1] + bytes([g[-1] ^ 1]), 0x40)):
                call('C_DecryptInit(CKM_AES_GCM)', 0, lambda: lib.C_DecryptInit(s2, mech(P.CKM_AES_GCM, gp, 48), key))
                ob = ffi.new('CK_BYTE[%d]' % len(blob))
                ol = ffi.new('CK_ULONG *', len(blob))
                call('C_Decrypt(GCM, %s)' % what, want, lambda: lib.C_Decrypt(s2, blob, len(blob), ob, ol))
        call('C_DestroyObject(session pKEK)', 0, lambda: lib.C_DestroyObject(s1, key))
        call('C_EncryptInit(destroyed key)', 0x60,
             lambda: lib.C_EncryptInit(s2, mech(P.CKM_AES_CBC, civ, 16), key))
    known_answers(ffi, lib, s1, s2, P, attrs, mech, call, rows)
    call('C_CloseSession(second)', 0, lambda: lib.C_CloseSession(s2))
    call('C_Finalize(NULL)', 0, lambda: lib.C_Finalize(ffi.NULL))
    ia = ffi.new('CK_C_INITIALIZE_ARGS *')
    ia.flags = P.CKF_OS_LOCKING_OK
    call('C_Initialize(CKF_OS_LOCKING_OK) again, same process', 0, lambda: lib.C_Initialize(ia))
    call('C_OpenSession(SERIAL) after re-init', 0, lambda: lib.C_OpenSession(slot, 4, ffi.NULL, ffi.NULL, sh))
    s3 = sh[0]
    call('C_GetSessionInfo after re-init', 0, lambda: lib.C_GetSessionInfo(s3, si))
    rows.append(('  state after re-init', 'CKS_RO_PUBLIC_SESSION(0)', str(si.state), si.state == 0,
                 'finalize logs out'))
    if mkek is not None:
        call('C_EncryptInit(handle from before C_Finalize)', 0x60,
             lambda: lib.C_EncryptInit(s3, mech(P.CKM_AES_CBC, iv, 16), mkek))
    wrong = WRONG_PIN.encode()
    if backend.pin:
        call('C_Login(CKU_USER, wrong PIN)', 0xa0, lambda: lib.C_Login(s3, 1, wrong, len(wrong)))
    else:
        call('C_Login(CKU_USER, any PIN) on a "pin": false token', 0,
             lambda: lib.C_Login(s3, 1, wrong, len(wrong)), 'the PIN is ignored')
        call('C_Logout', 0, lambda: lib.C_Logout(s3))
    call('C_Login(CKU_USER, right PIN)', 0, lambda: lib.C_Login(s3, 1, pin, len(pin)))
    # (The probe's token objects stay in the scratch token, removed with it.)
    call('C_Finalize(NULL)', 0, lambda: lib.C_Finalize(ffi.NULL))
    probe.last = (ffi, lib, slot, pin)
    return rows


def finalize_under_load(ffi, lib, slot, pin, rows):
    """Barbican re-initializes (C_Finalize, C_Initialize, C_Login, ...) in
    whichever thread saw an error while its other threads are inside
    PKCS#11 calls, and those threads then log in again too.  Done here with
    raw calls (Barbican's own locks can deadlock in that situation; that
    is Barbican's, see docs/barbican.md): no crash, no hang, every call
    answers a clean CK_RV, and the module works afterwards."""
    from barbican.plugin.crypto import pkcs11 as P
    # What a call caught by another thread's finalize / initialize / login
    # may answer; CKR_USER_ANOTHER_ALREADY_LOGGED_IN would be wrong (it
    # means the SO), CKR_USER_ALREADY_LOGGED_IN is right.
    allowed = {0x0, 0x190, 0x191, 0xb3, 0xb0, 0x82, 0x91, 0x100, 0x101}
    seen = {}
    odd = []
    stop = threading.Event()
    tmpl = P.PKCS11._build_attributes(Fake(ffi), [P.Attribute(P.CKA_CLASS, P.CKO_SECRET_KEY)])

    def note(rv, what):
        seen[rv] = seen.get(rv, 0) + 1
        if rv not in allowed:
            odd.append('%s: %s' % (what, rvname(rv)))
        return rv

    def worker():
        sh = ffi.new('CK_SESSION_HANDLE *')
        si = ffi.new('CK_SESSION_INFO *')
        buf = ffi.new('CK_BYTE[32]')
        hs = ffi.new('CK_OBJECT_HANDLE[4]')
        n = ffi.new('CK_ULONG *')
        while not stop.is_set():
            if note(lib.C_OpenSession(slot, 4, ffi.NULL, ffi.NULL, sh), 'C_OpenSession'):
                continue
            s = sh[0]
            if note(lib.C_GetSessionInfo(s, si), 'C_GetSessionInfo') == 0 and si.state == 0:
                note(lib.C_Login(s, 1, pin, len(pin)), 'C_Login')
            note(lib.C_GenerateRandom(s, buf, 32), 'C_GenerateRandom')
            if note(lib.C_FindObjectsInit(s, tmpl.template, 1), 'C_FindObjectsInit') == 0:
                note(lib.C_FindObjects(s, hs, 4, n), 'C_FindObjects')
                note(lib.C_FindObjectsFinal(s), 'C_FindObjectsFinal')
            note(lib.C_CloseSession(s), 'C_CloseSession')

    if lib.C_Initialize(ffi.NULL) not in (0, 0x191):
        rows.append(('finalize under load', 'CKR_OK', 'C_Initialize failed', False, ''))
        return
    ts = [threading.Thread(target=worker, daemon=True) for _ in range(6)]
    for t in ts:
        t.start()
    for _ in range(5):
        time.sleep(0.3)
        note(lib.C_Finalize(ffi.NULL), 'C_Finalize (main)')
        note(lib.C_Initialize(ffi.NULL), 'C_Initialize (main)')
    time.sleep(0.3)
    stop.set()
    for t in ts:
        t.join(120)
    hung = any(t.is_alive() for t in ts)
    summary = ', '.join('%s x%d' % (rvname(k), v) for k, v in sorted(seen.items()))
    rows.append(('C_Finalize/C_Initialize x5 beside 6 threads at work', 'no hang, clean CK_RVs',
                 'hang' if hung else ('unexpected: ' + '; '.join(sorted(set(odd))[:4]) if odd else 'ok'),
                 not hung and not odd, summary[:200]))
    if hung:
        return
    sh = ffi.new('CK_SESSION_HANDLE *')
    si = ffi.new('CK_SESSION_INFO *')
    rv = lib.C_OpenSession(slot, 4, ffi.NULL, ffi.NULL, sh)
    ok = rv == 0 and lib.C_GetSessionInfo(sh[0], si) == 0
    if ok and si.state == 0:
        ok = lib.C_Login(sh[0], 1, pin, len(pin)) == 0
    rows.append(('  afterwards: open, log in', 'CKR_OK', 'ok' if ok else 'failed', ok, ''))
    lib.C_Finalize(ffi.NULL)


def known_answers(ffi, lib, s1, s2, P, attrs, mech, call, rows):
    """Exact values: keys of known value (C_CreateObject, which Barbican
    itself does not call) through Barbican's mechanisms, compared with
    Python's `cryptography` and `hmac`."""
    import hmac as hmac_mod
    from cryptography.hazmat.primitives import padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    def create(value, ktype, extra=()):
        a = attrs([(P.CKA_CLASS, P.CKO_SECRET_KEY), (P.CKA_KEY_TYPE, ktype), (P.CKA_TOKEN, False),
                   (P.CKA_PRIVATE, True), (P.CKA_VALUE, value)] + list(extra))
        h = ffi.new('CK_OBJECT_HANDLE *')
        rv = lib.C_CreateObject(s1, a.template, len(a.template), h)
        return rv, h[0]

    def same(name, got, want):
        rows.append(('  ' + name, want.hex()[:24], got.hex()[:24] if got is not None else '-',
                     got == want, 'known answer'))

    def cbc(key, iv, data, enc=True):
        c = Cipher(algorithms.AES(key), modes.CBC(iv))
        op = c.encryptor() if enc else c.decryptor()
        return op.update(data) + op.finalize()

    def pkcs7(data):
        p = padding.PKCS7(128).padder()
        return p.update(data) + p.finalize()

    K = bytes(range(32))
    use = [(P.CKA_ENCRYPT, True), (P.CKA_DECRYPT, True), (P.CKA_WRAP, True), (P.CKA_UNWRAP, True),
           (P.CKA_SIGN, True), (P.CKA_VERIFY, True), (P.CKA_SENSITIVE, False), (P.CKA_EXTRACTABLE, True)]
    rv, k = create(K, P.CKK_AES, use)
    if rv == 0x54:
        rows.append(('known answers', 'CKR_OK', 'C_CreateObject: CKR_FUNCTION_NOT_SUPPORTED', True,
                     'not checked: no C_CreateObject for keys of known value'))
        return
    if call('C_CreateObject(AES-256 session key of known value)', 0, lambda: rv) != 0:
        return
    data = bytes(range(64))          # Barbican MACs IV(16) || wrapped KEK(48)
    iv = bytes(16 * [0xA5])
    # CKM_AES_CBC, exact-size output
    ct = ffi.new('CK_BYTE[64]')
    n = ffi.new('CK_ULONG *', 64)
    if (call('C_EncryptInit(CKM_AES_CBC, known key)', 0,
             lambda: lib.C_EncryptInit(s2, mech(P.CKM_AES_CBC, ffi.new('CK_BYTE[16]', iv), 16), k)) == 0
            and call('C_Encrypt(CKM_AES_CBC)', 0, lambda: lib.C_Encrypt(s2, data, 64, ct, n)) == 0):
        same('AES-CBC = cryptography', bytes(ffi.buffer(ct, n[0])), cbc(K, iv, data))
    # CKM_AES_GCM, 12-byte IV, 128-bit tag, no AAD
    giv = bytes(12 * [0x3C])
    gp = ffi.new('CK_AES_GCM_PARAMS *')
    gbuf = ffi.new('CK_BYTE[12]', giv)
    gp.pIv = ffi.cast('char *', gbuf)
    gp.ulIvLen = 12
    gp.ulIvBits = 96
    gp.ulTagBits = 128
    gct = ffi.new('CK_BYTE[80]')
    n = ffi.new('CK_ULONG *', 80)
    if (call('C_EncryptInit(CKM_AES_GCM, known key)', 0,
             lambda: lib.C_EncryptInit(s2, mech(P.CKM_AES_GCM, gp, 48), k)) == 0
            and call('C_Encrypt(CKM_AES_GCM)', 0, lambda: lib.C_Encrypt(s2, data, 64, gct, n)) == 0):
        same('AES-GCM ct||tag = cryptography', bytes(ffi.buffer(gct, n[0])), AESGCM(K).encrypt(giv, data, None))
    # MACs
    G = bytes(range(100, 132))
    rvg, g = create(G, P.CKK_GENERIC_SECRET, [(P.CKA_SIGN, True), (P.CKA_VERIFY, True),
                                              (P.CKA_SENSITIVE, False)])
    call('C_CreateObject(generic secret of known value)', 0, lambda: rvg)
    for name, m, key, want in (
            ('CKM_SHA256_HMAC, AES key', P.CKM_SHA256_HMAC, k, hmac_mod.new(K, data, 'sha256').digest()),
            ('CKM_SHA256_HMAC, generic secret', P.CKM_SHA256_HMAC, g if rvg == 0 else None,
             hmac_mod.new(G, data, 'sha256').digest()),
            ('CKM_AES_MAC, AES key', P.CKM_AES_MAC, k, cbc(K, bytes(16), data)[-16:-8])):
        if key is None:
            continue
        sig = ffi.new('CK_BYTE[32]')
        n = ffi.new('CK_ULONG *', 32)
        if (call('C_SignInit(%s, known key)' % name, 0, lambda: lib.C_SignInit(s1, mech(m), key)) == 0
                and call('C_Sign(%s)' % name, 0, lambda: lib.C_Sign(s1, data, 64, sig, n)) == 0):
            same(name + ' = Python', bytes(ffi.buffer(sig, n[0])), want)
    # CKM_AES_CBC_PAD wrap of a key of known value, and unwrap of a blob
    # made by `cryptography`.
    PK = bytes(range(200, 232))
    rvp, pk = create(PK, P.CKK_AES, [(P.CKA_ENCRYPT, True), (P.CKA_DECRYPT, True),
                                     (P.CKA_SENSITIVE, True), (P.CKA_EXTRACTABLE, True)])
    call('C_CreateObject(pKEK of known value, sensitive, extractable)', 0, lambda: rvp)
    wiv = bytes(16 * [0x5A])
    if rvp == 0:
        wbuf = ffi.new('CK_BYTE[64]')
        n = ffi.new('CK_ULONG *', 64)
        if call('C_WrapKey(CKM_AES_CBC_PAD, known keys)', 0,
                lambda: lib.C_WrapKey(s1, mech(P.CKM_AES_CBC_PAD, ffi.new('CK_BYTE[16]', wiv), 16), k, pk,
                                      wbuf, n)) == 0:
            same('CBC_PAD wrap = cryptography', bytes(ffi.buffer(wbuf, n[0])), cbc(K, wiv, pkcs7(PK)))
    blob = cbc(K, wiv, pkcs7(bytes(range(50, 82))))
    a = attrs([(P.CKA_CLASS, P.CKO_SECRET_KEY), (P.CKA_KEY_TYPE, P.CKK_AES), (P.CKA_TOKEN, False),
               (P.CKA_PRIVATE, True), (P.CKA_SENSITIVE, True), (P.CKA_ENCRYPT, True),
               (P.CKA_DECRYPT, True), (P.CKA_EXTRACTABLE, True)])
    uh = ffi.new('CK_OBJECT_HANDLE *')
    if call('C_UnwrapKey(CKM_AES_CBC_PAD, blob from cryptography)', 0,
            lambda: lib.C_UnwrapKey(s1, mech(P.CKM_AES_CBC_PAD, ffi.new('CK_BYTE[16]', wiv), 16), k, blob,
                                    len(blob), a.template, len(a.template), uh)) == 0:
        ct = ffi.new('CK_BYTE[64]')
        n = ffi.new('CK_ULONG *', 64)
        if (call('C_EncryptInit(CKM_AES_CBC, unwrapped key)', 0,
                 lambda: lib.C_EncryptInit(s2, mech(P.CKM_AES_CBC, ffi.new('CK_BYTE[16]', iv), 16), uh[0])) == 0
                and call('C_Encrypt(CKM_AES_CBC, unwrapped key)', 0,
                         lambda: lib.C_Encrypt(s2, data, 64, ct, n)) == 0):
            same('unwrapped key encrypts as the original', bytes(ffi.buffer(ct, n[0])),
                 cbc(bytes(range(50, 82)), iv, data))
        # A blob whose padding is wrong is refused.
        bad = cbc(K, wiv, bytes(range(50, 82)) + bytes(16 * [0x11]))
        call('C_UnwrapKey(CKM_AES_CBC_PAD, bad padding)', 0x110,
             lambda: lib.C_UnwrapKey(s1, mech(P.CKM_AES_CBC_PAD, ffi.new('CK_BYTE[16]', wiv), 16), k, bad,
                                     len(bad), a.template, len(a.template), uh))


class Fake:
    """Just enough of a PKCS11 instance for Barbican's _build_attributes."""

    def __init__(self, ffi):
        self.ffi = ffi


def print_probe(rows):
    w = max(len(r[0]) for r in rows)
    bad = 0
    for name, want, got, ok, note in rows:
        mark = 'ok  ' if ok else 'FAIL'
        bad += 0 if ok else 1
        print('%s %-*s  want %-28s got %-28s %s' % (mark, w, name, want, got, note))
    print('# %d calls, %d not as the contract says' % (len(rows), bad))
    return bad == 0


# -------------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('mode', choices=['run', 'outage', 'probe', 'decrypt-stored'])
    ap.add_argument('arg', nargs='?')
    ap.add_argument('--backend', choices=['tang', 'softhsm'], default='tang')
    ap.add_argument('--variant', choices=sorted(VARIANTS), default='defaults')
    ap.add_argument('--pin', choices=['true', 'false'], default='true')
    ap.add_argument('--lease', type=int, default=20)
    ap.add_argument('--set', action='append', default=[], metavar='OPTION=VALUE',
                    help='an extra [p11_crypto_plugin] option on top of the variant')
    ap.add_argument('--no-skip', action='store_true',
                    help='run even when the module lacks functions (to see every CK_RV)')
    ap.add_argument('--keep', action='store_true', help='keep the scratch directory')
    ap.add_argument('--softhsm-shim', action='store_true',
                    help='harness validation on SoftHSM2 only: Barbican\'s CKM_AES_CBC_PAD wrap '
                         'replaced by CKM_AES_KEY_WRAP_PAD (softhsm-shim/sitecustomize.py)')
    a = ap.parse_args()
    for kv in a.set:
        k, _, v = kv.partition('=')
        VARIANTS[a.variant] = dict(VARIANTS[a.variant], **{k: {'true': True, 'false': False}.get(v, v)})
    if a.softhsm_shim:
        if a.backend != 'softhsm':
            raise SystemExit('--softhsm-shim is for --backend softhsm only')
        if os.environ.get('TP_BARBICAN_SHIM') != '1':
            os.environ['TP_BARBICAN_SHIM'] = '1'
            os.environ['PYTHONPATH'] = os.path.join(HERE, 'softhsm-shim')
            os.execv(sys.executable, [sys.executable] + sys.argv)
    need_barbican()
    if a.mode == 'decrypt-stored':
        return child_decrypt_stored(a.arg)
    pin = a.pin == 'true'
    parent = os.environ.get('TANG_TMP') if a.backend == 'tang' else None
    work = tempfile.mkdtemp(prefix='tp-barbican.', dir=parent)
    try:
        # Barbican reads ~/.barbican/barbican.conf when its modules are
        # imported: a scratch HOME with the database settings comes first.
        home = os.path.join(work, 'home')
        os.makedirs(os.path.join(home, '.barbican'))
        write_conf(os.path.join(home, '.barbican', 'barbican.conf'), {},
                   'sqlite:///' + os.path.join(work, 'barbican.sqlite'))
        os.environ['HOME'] = home
        backend = Backend(a.backend, pin, work, lease=a.lease if a.mode == 'outage' else None)
        if not a.no_skip:
            preflight(backend)
        os.environ['TP_BARBICAN_LIB'] = backend.lib
        os.environ['TP_BARBICAN_WORK'] = work
        os.environ['TP_BARBICAN_SQL'] = 'sqlite:///' + os.path.join(work, 'barbican.sqlite')
        print('# %s: %s, %s token, variant %s, module %s'
              % (a.mode, a.backend, 'PIN' if pin else '"pin": false', a.variant, backend.lib))
        if a.mode == 'probe':
            # Probe: initialize the token first, then raw calls.
            try:
                backend.init_token()
                init = ('token initialized (pkcs11-tool --init-token%s)'
                        % (' --init-pin' if pin else ''), 'ok', 'ok', True, '')
            except AssertionError as e:
                m = re.search(r'function (C_\w+) failed: rv = (\w+)', str(e))
                init = ('token initialized (pkcs11-tool)', 'ok', 'failed', False,
                        '%s: %s' % m.groups() if m else str(e)[-140:])
            ok = print_probe([init] + probe(backend))
            if getattr(probe, 'last', None):
                # Printed first: a module that crashes here loses nothing.
                print('# C_Finalize under load (6 threads; a crash or hang here is a failure)',
                      flush=True)
                rows = []
                finalize_under_load(*probe.last, rows)
                ok = print_probe(rows) and ok
            return 0 if ok else 1
        if a.mode == 'outage':
            if a.backend != 'tang':
                raise SystemExit('outage needs the tang backend')
            steps = outage(backend, a.lease)
        else:
            steps = scenario(backend, a.variant)
        return 0 if steps.summary() else 1
    finally:
        if a.keep:
            print('# kept %s' % work)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    sys.exit(main())
