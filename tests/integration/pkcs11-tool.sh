#!/bin/bash
# pkcs11-tool (OpenSC) drives the module directly (--module, C_Initialize
# with NULL arguments: the configuration comes from TANG_PKCS11_CONF):
# listing, reading the Tang public key, ECDH1-DERIVE agreeing with OpenSSL,
# and once Tang is stopped: no key for a fresh process pinned by thp alone,
# CKR_DEVICE_ERROR when the configuration keeps the advertisement.
set -u
. "$(dirname "$0")/lib.sh"
tp_need pkcs11-tool openssl python3 cmp curl
W=$TANG_TMP/pkcs11-tool
mkdir -p "$W"
M=("${TPH[@]}" pkcs11-tool --module "$TANG_PKCS11_MODULE")
id=$(tp_idhex)
echo "# Tang exchange key $(tp_kid), CKA_ID $id"

out=$("${M[@]}" -L 2>&1); echo "$out"
tp_check "-L lists a slot with token label tang" grep -Eq 'token label +: tang$' <<<"$out"
out=$("${M[@]}" -T 2>&1); echo "$out"
tp_check "-T lists the token" grep -Eq 'token label +: tang$' <<<"$out"
tp_check "-T: token initialized, no login required" \
	bash -c '! grep -q "login required" <<<"$1" && grep -q "token initialized" <<<"$1"' _ "$out"
out=$("${M[@]}" -M 2>&1); echo "$out"
tp_check "-M lists ECDH1-DERIVE with derive usage" grep -Eq 'ECDH1-DERIVE.*derive' <<<"$out"
tp_check "-M lists AES-CBC-PAD (16..32 bytes) for encrypt, decrypt, wrap, unwrap" \
	grep -Eq 'AES-CBC-PAD, keySize=\{16,32\}, hw, encrypt, decrypt, wrap, unwrap$' <<<"$out"
tp_check "-M lists SHA256-HMAC for sign and verify" \
	grep -Eq 'SHA256-HMAC, keySize=\{1,8192\}, hw, sign, verify$' <<<"$out"
tp_check "-M lists the SHA256 digest" grep -Eq '^ *SHA256, hw, digest$' <<<"$out"
tp_check "-M lists at least 28 mechanisms, all hw" test "$(grep -c ', hw' <<<"$out")" -ge 28
# --test: random, seed, digests (the soft-key mechanisms need keys it
# cannot make here: tests/integration/test_soft.c covers them).
out=$("${M[@]}" --test 2>&1); rc=$?; echo "$out"
tp_check "--test exits 0" test "$rc" = 0
tp_check "--test: C_SeedRandom and C_GenerateRandom OK" grep -q 'seems to be OK' <<<"$out"
tp_check "--test: digests work" grep -q 'all 4 digest functions seem to work' <<<"$out"
tp_check "--test: no errors" grep -q '^No errors' <<<"$out"
got=$(printf abc | "${M[@]}" --hash -m SHA256 2>/dev/null | od -An -tx1 | tr -d ' \n')
tp_check "--hash -m SHA256 of abc (FIPS 180-4)" \
	test "$got" = ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad
out=$("${M[@]}" -O 2>&1); echo "$out"
tp_check "-O shows the EC public key" grep -q 'Public Key Object; EC' <<<"$out"
tp_check "-O shows the EC private key" grep -q 'Private Key Object; EC' <<<"$out"
tp_check "-O shows CKA_ID = the S256 thumbprint ($id) twice" \
	test "$(grep -Eic "ID: +$id\$" <<<"$out")" = 2
tp_check "-O: the private key can derive" \
	bash -c 'sed -n "/Private Key Object/,/Object/p" <<<"$1" | grep -Eq "Usage:.*derive"' _ "$out"

# --read-object: DER SPKI equal to the server's key file.
tp_server_spki "$W/server_pub.der"
"${M[@]}" --read-object --type pubkey --id "$id" -o "$W/token_pub.der" 2>&1
tp_check "--read-object --type pubkey gives the server's public key (DER SPKI)" \
	cmp "$W/token_pub.der" "$W/server_pub.der"
openssl pkey -pubin -inform DER -in "$W/server_pub.der" -out "$W/server_pub.pem" || tp_fail "openssl cannot parse the SPKI"

# --derive: equals a local ECDH with OpenSSL, for several throw-away peers.
for i in 1 2 3; do
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-521 -out "$W/peer$i.pem" 2>/dev/null
	openssl pkey -in "$W/peer$i.pem" -pubout -outform DER -out "$W/peer$i.der"
	openssl pkeyutl -derive -inkey "$W/peer$i.pem" -peerkey "$W/server_pub.pem" -out "$W/want$i.bin"
	before=$(tp_posts)
	"${M[@]}" --derive -m ECDH1-DERIVE --id "$id" -i "$W/peer$i.der" -o "$W/got$i.bin" 2>&1
	tp_check "peer $i: --derive -m ECDH1-DERIVE (raw point) equals openssl pkeyutl -derive" \
		cmp "$W/got$i.bin" "$W/want$i.bin"
	tp_check "peer $i: one recovery request reached tangd" test "$(tp_posts)" = $((before + 1))
	"${M[@]}" --derive --derive-pass-der -m ECDH1-DERIVE --id "$id" -i "$W/peer$i.der" \
		-o "$W/gotder$i.bin" 2>&1
	tp_check "peer $i: --derive-pass-der (DER point) equals openssl pkeyutl -derive" \
		cmp "$W/gotder$i.bin" "$W/want$i.bin"
done
tp_check "the derived secret is 66 bytes" test "$(stat -c %s "$W/got1.bin")" = 66

# A P-256 peer: refused before any request.
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$W/p256.pem" 2>/dev/null
openssl pkey -in "$W/p256.pem" -pubout -outform DER -out "$W/p256.der"
before=$(tp_posts)
out=$("${M[@]}" --derive -m ECDH1-DERIVE --id "$id" -i "$W/p256.der" -o "$W/p256.bin" 2>&1); rc=$?
echo "$out"
tp_check "a P-256 peer fails" test $rc != 0
tp_check "a P-256 peer sends no request" test "$(tp_posts)" = "$before"

out=$("${M[@]}" --generate-random 32 2>/dev/null | wc -c)
tp_check "--generate-random 32 gives 32 bytes" test "$out" = 32

# Keep the advertisement (as a clevis JWE does): a configuration pinning the
# server by thp and carrying that adv knows the keys while Tang is down.
curl -sf -o "$W/adv.jws" "$TANG_URL/adv" || tp_fail "cannot fetch the advertisement"
cat > "$W/adv.conf" <<CONF
{ "tokens": [ { "label": "tang", "tang": { "url": "$TANG_URL", "thp": "$TANG_THP", "adv": "adv.jws" }, "timeout": 5 } ] }
CONF
TANG_PKCS11_CONF=$W/adv.conf "${M[@]}" --derive -m ECDH1-DERIVE --id "$id" -i "$W/peer2.der" -o "$W/advconf.bin" 2>&1
tp_check "with the adv in the configuration: the same secret" cmp "$W/advconf.bin" "$W/want2.bin"

# Tang stopped.
"$TANG_CTL" stop
log_off=$(stat -c %s "$TANG_PKCS11_LOG" 2>/dev/null || echo 0)
out=$("${M[@]}" -O 2>&1); echo "$out"
tp_check "Tang stopped, thp only: a fresh process sees no Tang key" \
	bash -c '! grep -q "Key Object" <<<"$1"' _ "$out"
out=$("${M[@]}" --derive -m ECDH1-DERIVE --id "$id" -i "$W/peer1.der" -o "$W/down.bin" 2>&1); rc=$?
echo "$out"
tp_check "Tang stopped, thp only: pkcs11-tool --derive fails (no key)" test $rc != 0
newlog=$(tail -c +$((log_off + 1)) "$TANG_PKCS11_LOG" 2>/dev/null); echo "$newlog"
tp_check "Tang stopped, thp only: the module log says the server is unreachable" \
	bash -c 'grep -qi "unreachable" <<<"$1" && grep -qF "$2" <<<"$1"' _ "$newlog" "$TANG_URL"

out=$(TANG_PKCS11_CONF=$W/adv.conf "${M[@]}" -O 2>&1); echo "$out"
tp_check "Tang stopped, adv kept: the key pair is still listed" \
	test "$(grep -Eic "ID: +$id\$" <<<"$out")" = 2
out=$(TANG_PKCS11_CONF=$W/adv.conf "${M[@]}" --derive -m ECDH1-DERIVE --id "$id" -i "$W/peer1.der" -o "$W/down.bin" 2>&1); rc=$?
echo "$out"
tp_check "Tang stopped, adv kept: pkcs11-tool --derive fails" test $rc != 0
tp_check "Tang stopped, adv kept: C_DeriveKey says CKR_DEVICE_ERROR" grep -q 'C_DeriveKey failed: rv = CKR_DEVICE_ERROR' <<<"$out"
tp_check "Tang stopped, adv kept: no secret written" test ! -s "$W/down.bin"

"$TANG_CTL" start
"${M[@]}" --derive -m ECDH1-DERIVE --id "$id" -i "$W/peer1.der" -o "$W/up.bin" 2>&1
tp_check "Tang started again: the same secret" cmp "$W/up.bin" "$W/want1.bin"

# OpenSC's own self test (issue 6): whatever it finds to test must pass.
out=$("${M[@]}" --test 2>&1); rc=$?; echo "$out"
tp_check "pkcs11-tool --test: exit 0" test $rc = 0
tp_check "pkcs11-tool --test: No errors" grep -q '^No errors' <<<"$out"
tp_done
