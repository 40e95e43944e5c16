#!/bin/bash
# jwe-tool.sh TOOL: tools/tang-pkcs11-jwe against real clevis and tangd.
# Run by meson under tests/fixtures/with-tangd.  Checks exact bytes both
# ways (clevis encrypt -> tool decrypt, tool encrypt -> clevis decrypt) for
# 0, 1, 32, 4096 and 65537 bytes, through stdin/stdout and --in/--out, the
# documented exit statuses (0 ok, 1 refused, 2 usage, 3 setup, 4 I/O) and
# the CK_RV names in its messages.
set -u
TOOL=$(realpath "${1:?usage: jwe-tool.sh path/to/tang-pkcs11-jwe}")
. "$(dirname "$0")/lib.sh"
tp_need clevis python3 cmp
W=$TANG_TMP/jwe-tool
mkdir -p "$W"
cd "$W"
CFG='{"url":"'$TANG_URL'","thp":"'$TANG_THP'"}'

expect_rc() { # expect_rc WHAT WANT GOT
	if [ "$3" = "$2" ]; then tp_ok "$1 (exit $3)"; else tp_fail "$1: exit $3, want $2"; cat err 2>/dev/null; fi
}
expect_err() { # expect_err WHAT PATTERN (in ./err)
	if grep -q -- "$2" err; then tp_ok "$1"; else tp_fail "$1: stderr lacks '$2':"; cat err; fi
}

for n in 0 1 32 4096 65537; do
	head -c "$n" /dev/urandom > pt.$n
	clevis encrypt tang "$CFG" < pt.$n > c.$n.jwe || { tp_fail "clevis encrypt ($n bytes)"; continue; }
	# clevis -> tool: stdin/stdout for some sizes, --in/--out for others
	rm -f out.$n
	if [ $((n % 2)) = 0 ]; then
		"$TOOL" decrypt < c.$n.jwe > out.$n 2>err; rc=$?
	else
		"$TOOL" decrypt --in c.$n.jwe --out out.$n 2>err; rc=$?
	fi
	expect_rc "decrypt a clevis JWE of $n bytes" 0 $rc
	tp_check "decrypt: exact $n bytes" cmp pt.$n out.$n
	# tool -> clevis
	rm -f t.$n.jwe
	if [ $((n % 2)) = 0 ]; then
		"$TOOL" encrypt --in pt.$n --out t.$n.jwe 2>err; rc=$?
	else
		"$TOOL" encrypt < pt.$n > t.$n.jwe 2>err; rc=$?
	fi
	expect_rc "encrypt $n bytes" 0 $rc
	if clevis decrypt < t.$n.jwe > back.$n 2>err; then
		tp_check "clevis decrypt of the tool's JWE: exact $n bytes" cmp pt.$n back.$n
	else
		tp_fail "clevis decrypt of the tool's JWE ($n bytes)"; cat err
	fi
	# five parts, empty encrypted key, no trailing newline (clevis' tang pin refuses one)
	tp_check "encrypt output is a 5-part compact JWE without newline" \
		python3 -c 'import sys; d=open(sys.argv[1],"rb").read(); p=d.split(b"."); sys.exit(not (len(p)==5 and p[1]==b"" and not d.endswith(b"\n")))' t.$n.jwe
done

# decrypt output file is private
"$TOOL" decrypt --in c.32.jwe --out secret.out 2>err
tp_check "--out file mode 0600" test "$(stat -c %a secret.out)" = 600

# --config instead of the environment; --token
cp "$TANG_PKCS11_CONF" own.conf
env -u TANG_PKCS11_CONF "$TOOL" decrypt --config "$W/own.conf" --token tang --in c.32.jwe > out.cfg 2>err
expect_rc "--config FILE --token tang" 0 $?
tp_check "--config: exact bytes" cmp pt.32 out.cfg

# usage errors: 2
"$TOOL" 2>err >/dev/null; expect_rc "no command" 2 $?
"$TOOL" frobnicate 2>err >/dev/null; expect_rc "unknown command" 2 $?
"$TOOL" decrypt --bogus 2>err >/dev/null; expect_rc "unknown option" 2 $?
"$TOOL" decrypt extra 2>err >/dev/null; expect_rc "extra argument" 2 $?
"$TOOL" --help >help 2>err; expect_rc "--help" 0 $?
tp_check "--help names both commands" grep -q 'decrypt|encrypt' help

# setup errors: 3
"$TOOL" decrypt --module /nonexistent/tang-pkcs11.so --in c.32.jwe >out 2>err; expect_rc "missing module" 3 $?
expect_err "missing module: message" "cannot load the module"
"$TOOL" decrypt --token no-such-token --in c.32.jwe >out 2>err; expect_rc "unknown token" 3 $?
expect_err "unknown token: message" 'no token labelled "no-such-token"'
echo '{ "tokens": [ { "label": 5 } ] }' > bad.conf
"$TOOL" decrypt --config "$W/bad.conf" --in c.32.jwe >out 2>err; expect_rc "invalid configuration" 3 $?
expect_err "invalid configuration: CK_RV name" "C_Initialize failed: CKR_FUNCTION_FAILED"

# I/O errors: 4
"$TOOL" decrypt --in /nonexistent/x.jwe >out 2>err; expect_rc "missing input" 4 $?
"$TOOL" decrypt --in c.32.jwe --out /nonexistent/dir/x 2>err; expect_rc "unwritable output" 4 $?

# refused: 1, with the CK_RV name, no plaintext, no output file
python3 - c.32.jwe > tampered.jwe <<'PY'
import base64, sys
p = open(sys.argv[1]).read().split(".")
t = bytearray(base64.urlsafe_b64decode(p[4] + "=="))
t[0] ^= 1
p[4] = base64.urlsafe_b64encode(bytes(t)).decode().rstrip("=")
sys.stdout.write(".".join(p))
PY
rm -f tampered.out
"$TOOL" decrypt --in tampered.jwe --out tampered.out 2>err; expect_rc "tampered JWE" 1 $?
expect_err "tampered JWE: CK_RV name" "C_Decrypt failed: CKR_ENCRYPTED_DATA_INVALID"
tp_check "tampered JWE: no output file" test ! -e tampered.out
"$TOOL" decrypt < tampered.jwe > tampered.stdout 2>err
tp_check "tampered JWE: nothing on stdout" test ! -s tampered.stdout
printf 'not a jwe' | "$TOOL" decrypt >/dev/null 2>err; expect_rc "garbage input" 1 $?
expect_err "garbage input: CK_RV name" "CKR_ENCRYPTED_DATA_INVALID"

# Tang stopped.  With the advertisement in the configuration the token
# still shows its key: encrypt works offline, decrypt is refused with
# CKR_DEVICE_ERROR; once Tang is back, clevis opens the offline JWE.
curl -sf -o adv.jws "$TANG_URL/adv"
cat > adv.conf <<CONF
{ "tokens": [ { "label": "tang", "tang": { "url": "$TANG_URL", "thp": "$TANG_THP", "adv": "adv.jws" }, "timeout": 3 } ] }
CONF
"$TANG_CTL" stop
"$TOOL" encrypt --config "$W/adv.conf" --in pt.32 --out offline.jwe 2>err; expect_rc "encrypt with Tang stopped (offline)" 0 $?
"$TOOL" decrypt --config "$W/adv.conf" --in c.32.jwe >down.out 2>err; expect_rc "decrypt with Tang stopped" 1 $?
expect_err "Tang stopped: CK_RV name" "C_Decrypt failed: CKR_DEVICE_ERROR"
tp_check "Tang stopped: nothing on stdout" test ! -s down.out
"$TANG_CTL" start
if clevis decrypt < offline.jwe > offline.out 2>err; then
	tp_check "the offline JWE opens with clevis: exact bytes" cmp pt.32 offline.out
else
	tp_fail "clevis decrypt of the offline JWE"; cat err
fi
tp_done
