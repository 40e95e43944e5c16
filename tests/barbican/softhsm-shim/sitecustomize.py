# Harness validation only, never used against tang-pkcs11 and never in CI:
# SoftHSM 2.6.1 (Debian 12) has no C_WrapKey/C_UnwrapKey with
# CKM_AES_CBC_PAD, so Barbican stops at its first KEK binding there.  To
# exercise the rest of tests/barbican/barbican-suite.py on a real PKCS#11
# library anyway, this replaces Barbican's wrap/unwrap with
# CKM_AES_KEY_WRAP_PAD (RFC 5649, which SoftHSM has), keeping Barbican's
# metadata layout (a 16-byte random "iv" is still stored, unused).
# Activated by barbican-suite.py --softhsm-shim (PYTHONPATH + TP_BARBICAN_SHIM=1).
import os

def _install(_p):
    if True:
        CKM_AES_KEY_WRAP_PAD = 0x210A

        def wrap_key(self, wrapping_key, key_to_wrap, session):
            mech = self.ffi.new("CK_MECHANISM *")
            mech.mechanism = CKM_AES_KEY_WRAP_PAD
            iv = self._generate_random(16, session)
            n = self.ffi.new("CK_ULONG *")
            self._check_error(self.lib.C_WrapKey(session, mech, wrapping_key, key_to_wrap,
                                                 self.ffi.NULL, n))
            buf = self.ffi.new("CK_BYTE[%d]" % n[0])
            self._check_error(self.lib.C_WrapKey(session, mech, wrapping_key, key_to_wrap,
                                                 buf, n))
            return {'iv': self.ffi.buffer(iv)[:], 'wrapped_key': self.ffi.buffer(buf, n[0])[:]}

        def unwrap_key(self, wrapping_key, iv, wrapped_key, session):
            mech = self.ffi.new("CK_MECHANISM *")
            mech.mechanism = CKM_AES_KEY_WRAP_PAD
            h = self.ffi.new("CK_OBJECT_HANDLE *")
            a = self._build_attributes([
                _p.Attribute(_p.CKA_CLASS, _p.CKO_SECRET_KEY),
                _p.Attribute(_p.CKA_KEY_TYPE, _p.CKK_AES),
                _p.Attribute(_p.CKA_TOKEN, False),
                _p.Attribute(_p.CKA_PRIVATE, True),
                _p.Attribute(_p.CKA_SENSITIVE, True),
                _p.Attribute(_p.CKA_ENCRYPT, True),
                _p.Attribute(_p.CKA_DECRYPT, True),
                _p.Attribute(_p.CKA_EXTRACTABLE, True)])
            w = self.ffi.new("CK_BYTE[]", wrapped_key)
            self._check_error(self.lib.C_UnwrapKey(session, mech, wrapping_key, w, len(wrapped_key),
                                                   a.template, len(a.template), h))
            return h[0]

        _p.PKCS11.wrap_key = wrap_key
        _p.PKCS11.unwrap_key = unwrap_key


# Patch the module right after it is imported (importing it here would read
# Barbican's configuration files too early).
if os.environ.get('TP_BARBICAN_SHIM') == '1':
    import importlib.abc
    import importlib.machinery
    import sys

    class _Hook(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name != 'barbican.plugin.crypto.pkcs11':
                return None
            spec = importlib.machinery.PathFinder.find_spec(name, path)
            if spec is None:
                return None
            real_exec = spec.loader.exec_module

            def exec_module(module):
                real_exec(module)
                _install(module)
            spec.loader.exec_module = exec_module
            return spec

    sys.meta_path.insert(0, _Hook())
