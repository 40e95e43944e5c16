#!/bin/bash
# p11-kit registration: the project's p11-kit/tang-pkcs11.module, with
# module: pointing at the built module and x-init-reserved: config=...,
# registered where p11-kit finds it, without touching the system:
#   - as root (CI): p11-kit ignores user configs for root, so the test runs
#     p11-kit in a private mount namespace (unshare -m) where a scratch copy
#     of p11-kit's module config directory (pkg-config p11_module_configs,
#     i.e. where meson install puts the file) is bind-mounted over the real one;
#   - otherwise: the user config $HOME/.config/pkcs11/modules with HOME a
#     scratch directory.
# Checks:
#   - p11-kit list-modules shows the module and its token (the config
#     arrives only through x-init-reserved: TANG_PKCS11_CONF is unset)
#   - pkcs11-tool through p11-kit-proxy.so lists and derives like OpenSSL
#   - registered without any configuration, p11-kit still works (no token)
set -u
. "$(dirname "$0")/lib.sh"
tp_need p11-kit pkcs11-tool openssl python3 cmp
proxy=
for p in /usr/lib/x86_64-linux-gnu/p11-kit-proxy.so /usr/lib/*/p11-kit-proxy.so /usr/lib/p11-kit-proxy.so; do
	[ -e "$p" ] && { proxy=$p; break; }
done
[ -n "$proxy" ] || tp_skip "p11-kit-proxy.so (Debian package p11-kit-modules) is missing"
if [ "$(id -u)" != 0 ] && grep -Eqs '^\s*user-config:\s*none' /etc/pkcs11/pkcs11.conf; then
	tp_skip "/etc/pkcs11/pkcs11.conf disables user module configs"
fi

W=$TANG_TMP/p11-kit
mkdir -p "$W/home"
mkdir -p "$W"
src=${TP_SOURCE_ROOT:-$(dirname "$0")/../..}/p11-kit/tang-pkcs11.module
sysdir=$(pkg-config --variable=p11_module_configs p11-kit-1 2>/dev/null || true)
[ -n "$sysdir" ] || sysdir=/usr/share/p11-kit/modules

module=$TANG_PKCS11_MODULE
conf=$TANG_PKCS11_CONF
# (TP_P11KIT_NO_UNSHARE=1 forces the fallback below, to test it.)
if [ "$(id -u)" = 0 ] && [ -z "${TP_P11KIT_NO_UNSHARE:-}" ] && [ -d "$sysdir" ] && command -v unshare >/dev/null &&
	unshare -m --propagation private true 2>/dev/null; then
	moddir=$W/modules
	mkdir -p "$moddir"
	cp -p "$sysdir"/*.module "$moddir"/ 2>/dev/null || true
	# pk CMD...: CMD sees $moddir as p11-kit's module config directory.
	pk() {
		unshare -m --propagation private bash -c \
			'mount --bind "$1" "$2" && shift 2 && exec "$@"' _ "$moddir" "$sysdir" "$@"
	}
	echo "# registering in a private mount namespace: $moddir over $sysdir"
elif [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null && id nobody >/dev/null 2>&1; then
	# No mount namespace: run p11-kit as nobody with a user config.  Every
	# file it touches goes to a world-readable scratch directory.
	W=$(mktemp -d /tmp/tp-p11kit.XXXXXX)
	trap 'rm -rf "$W"' EXIT
	chmod 0777 "$W"
	cp "$TANG_PKCS11_MODULE" "$W/tang-pkcs11.so"
	cp "$TANG_PKCS11_CONF" "$W/tang-pkcs11.conf"
	module=$W/tang-pkcs11.so
	conf=$W/tang-pkcs11.conf
	export TANG_PKCS11_LOG=$W/module.log
	moddir=$W/home/.config/pkcs11/modules
	mkdir -p "$moddir"
	chmod -R a+rwX "$W"
	pk() { setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"; }
	echo "# registering in the user configuration of nobody: $moddir"
elif [ "$(id -u)" != 0 ]; then
	moddir=$W/home/.config/pkcs11/modules
	mkdir -p "$moddir"
	pk() { "$@"; }
	echo "# registering in the user configuration $moddir"
else
	tp_skip "as root, p11-kit needs a private mount namespace (unshare -m) or setpriv to register a module without touching the system"
fi
export HOME=$W/home
modfile=$moddir/tang-pkcs11.module
# The shipped file, with module: made absolute (it is not installed here).
sed -e "s|^module:.*|module: $module|" "$src" > "$modfile"
echo "x-init-reserved: config=$conf" >> "$modfile"
chmod a+r "$modfile"
cat "$modfile"
unset TANG_PKCS11_CONF XDG_CONFIG_HOME

out=$(pk "${TPH[@]}" p11-kit list-modules 2>&1); echo "$out"
# p11-kit 0.24 prints "NAME: PATH" per module (NAME = the .module file's
# name), then indented details.
section() { awk -v name="$2" '/^[^ ]/ { on = index($0, name ": ") == 1 } on' <<<"$1"; }
tp_check "p11-kit list-modules shows the module" grep -q "^tang-pkcs11: $module\$" <<<"$out"
tp_check "p11-kit list-modules shows the token tang" \
	grep -Eq '^ +token: tang$' <<<"$(section "$out" tang-pkcs11)"

M=(pk "${TPH[@]}" pkcs11-tool --module "$proxy" --token-label tang)
id=$(tp_idhex)
out=$("${M[@]}" -O 2>&1); echo "$out"
tp_check "through p11-kit-proxy: -O shows the Tang key pair" \
	test "$(grep -Eic "ID: +$id\$" <<<"$out")" = 2
out=$("${M[@]}" -M 2>&1); echo "$out"
tp_check "through p11-kit-proxy: -M lists ECDH1-DERIVE" grep -q 'ECDH1-DERIVE' <<<"$out"

tp_server_spki "$W/server_pub.der"
"${M[@]}" --read-object --type pubkey --id "$id" -o "$W/token_pub.der" 2>&1
tp_check "through p11-kit-proxy: --read-object gives the server's SPKI" \
	cmp "$W/token_pub.der" "$W/server_pub.der"
openssl pkey -pubin -inform DER -in "$W/server_pub.der" -out "$W/server_pub.pem"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-521 -out "$W/peer.pem" 2>/dev/null
openssl pkey -in "$W/peer.pem" -pubout -outform DER -out "$W/peer.der"
openssl pkeyutl -derive -inkey "$W/peer.pem" -peerkey "$W/server_pub.pem" -out "$W/want.bin"
"${M[@]}" --derive -m ECDH1-DERIVE --id "$id" -i "$W/peer.der" -o "$W/got.bin" 2>&1
tp_check "through p11-kit-proxy: --derive equals openssl pkeyutl -derive" cmp "$W/got.bin" "$W/want.bin"

# A registered module without any configuration must not break p11-kit.
sed -i '/^x-init-reserved:/d' "$modfile"
out=$(pk "${TPH[@]}" p11-kit list-modules 2>&1); rc=$?
echo "$out"
tp_check "registered without a configuration: p11-kit list-modules still works" test $rc = 0
tp_check "registered without a configuration: the module is still listed" \
	grep -q "^tang-pkcs11: " <<<"$out"
if [ -e /etc/tang-pkcs11/tang-pkcs11.conf ] || [ -e /usr/local/etc/tang-pkcs11/tang-pkcs11.conf ]; then
	echo "# a default configuration exists: not checking for zero tokens"
else
	tp_check "registered without a configuration: the module has no token" \
		bash -c '! grep -q "token:" <<<"$1"' _ "$(section "$out" tang-pkcs11)"
fi
tp_done
