#!/bin/bash
# The sealed store through standard tools: the whole token lifecycle with
# pkcs11-tool (OpenSC), then the files searched byte by byte for every
# value, label, id and PIN, then disaster recovery with plain
# `clevis decrypt` (tools/tang-pkcs11-store-recover), then a restart of the
# consumer and a Tang outage.
set -u
. "$(dirname "$0")/lib.sh"
tp_need pkcs11-tool openssl python3 clevis
python3 -c 'import cryptography' 2>/dev/null || tp_skip "python3-cryptography is missing"
RECOVER=${TP_SOURCE_ROOT:-$(dirname "$0")/../..}/tools/tang-pkcs11-store-recover
W=$TANG_TMP/store-tool
mkdir -p "$W"
STORE=$W/store
cat > "$W/conf" <<CONF
{ "tokens": [ { "label": "tang", "tang": { "url": "$TANG_URL", "thp": "$TANG_THP" },
                "store": "$STORE", "timeout": 5, "lease": 300 } ] }
CONF
export TANG_PKCS11_CONF=$W/conf
M=("${TPH[@]}" pkcs11-tool --module "$TANG_PKCS11_MODULE")
SO=so-pin-7777
PIN=user-pin-4242
NEWPIN=user-pin-5353
LABEL=secret-label-Q7x
ID=c0ffee5eed
DLABEL=data-label-Z9k
DVALUE=data-value-W3m
CLABEL=cert-label-P2r

out=$("${M[@]}" -L 2>&1); echo "$out"
tp_check "an uninitialized store: pkcs11-tool shows an uninitialized token" \
	grep -q 'token state: *uninitialized' <<<"$out"

out=$("${M[@]}" --init-token --label wrong --so-pin "$SO" 2>&1); echo "$out"
tp_check "--init-token with another label is refused" grep -q CKR_ARGUMENTS_BAD <<<"$out"
tp_check "the log says the label comes from the configuration" \
	grep -q 'the label comes from the configuration' "$TANG_PKCS11_LOG"
tp_check "nothing was created" test ! -e "$STORE"

out=$("${M[@]}" --init-token --label tang --so-pin "$SO" 2>&1); echo "$out"
tp_check "--init-token --label tang" grep -qi 'initialized' <<<"$out"
out=$("${M[@]}" --init-pin --login --login-type so --so-pin "$SO" --pin "$PIN" 2>&1); echo "$out"
tp_check "--init-pin as SO" grep -qi 'User PIN successfully initialized' <<<"$out"
out=$("${M[@]}" -L 2>&1); echo "$out"
tp_check "-L: token initialized, PIN initialized, login required" \
	bash -c 'grep -q "token initialized" <<<"$1" && grep -q "PIN initialized" <<<"$1" && grep -q "login required" <<<"$1"' _ "$out"

head -c 32 /dev/urandom > "$W/key.bin"
KEYHEX=$(od -An -tx1 -v "$W/key.bin" | tr -d ' \n')
out=$("${M[@]}" --login --pin "$PIN" --write-object "$W/key.bin" --type secrkey --key-type AES:32 \
	--label "$LABEL" --id "$ID" --private 2>&1); echo "$out"
tp_check "--write-object a private AES key" grep -q 'Secret Key Object' <<<"$out"
printf '%s' "$DVALUE" > "$W/data.bin"
out=$("${M[@]}" --login --pin "$PIN" --write-object "$W/data.bin" --type data --label "$DLABEL" 2>&1); echo "$out"
tp_check "--write-object a public data object" grep -q "Data object" <<<"$out"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$W/c.key" \
	-subj /CN=tang-pkcs11-test -days 1 -outform DER -out "$W/cert.der" 2>/dev/null
out=$("${M[@]}" --login --pin "$PIN" --write-object "$W/cert.der" --type cert --label "$CLABEL" --id "$ID" 2>&1); echo "$out"
tp_check "--write-object a certificate" grep -q "Certificate Object" <<<"$out"
out=$("${M[@]}" --login --pin "$PIN" --keygen --key-type AES:32 --label gen-key --private 2>&1); echo "$out"
tp_check "--keygen AES:32" grep -q 'Secret Key Object; AES length 32' <<<"$out"

out=$("${M[@]}" -O 2>&1); echo "$out"
tp_check "-O without login: the public data object and certificate" \
	bash -c 'grep -q "$2" <<<"$1" && grep -q "$3" <<<"$1"' _ "$out" "$DLABEL" "$CLABEL"
tp_check "-O without login: no private key" bash -c '! grep -q "$2" <<<"$1"' _ "$out" "$LABEL"
out=$("${M[@]}" --login --pin "$PIN" -O 2>&1); echo "$out"
tp_check "--login -O: the private keys too" \
	bash -c 'grep -q "$2" <<<"$1" && grep -q gen-key <<<"$1"' _ "$out" "$LABEL"
"${M[@]}" --read-object --type data --label "$DLABEL" -o "$W/data.out" 2>&1
tp_check "--read-object gives the data back" cmp "$W/data.bin" "$W/data.out"
"${M[@]}" --read-object --type cert --id "$ID" -o "$W/cert.out" 2>&1
tp_check "--read-object gives the certificate back" cmp "$W/cert.der" "$W/cert.out"

out=$("${M[@]}" --login --pin "$PIN" --change-pin --new-pin "$NEWPIN" 2>&1); echo "$out"
tp_check "--change-pin" grep -q 'PIN successfully changed' <<<"$out"
out=$("${M[@]}" --login --pin "$PIN" -O 2>&1); echo "$out"
tp_check "the old PIN is refused" grep -q CKR_PIN_INCORRECT <<<"$out"
out=$("${M[@]}" -L 2>&1)
tp_check "one wrong PIN: -L shows the user PIN count low" grep -qi 'user PIN count low' <<<"$out"
out=$("${M[@]}" --login --pin "$NEWPIN" -O 2>&1); echo "$out"
tp_check "the new PIN opens the private key" grep -q "$LABEL" <<<"$out"
out=$("${M[@]}" --login --pin "$NEWPIN" --delete-object --type data --label "$DLABEL" 2>&1); echo "$out"
out=$("${M[@]}" -O 2>&1)
tp_check "--delete-object removed the data object" bash -c '! grep -q "$2" <<<"$1"' _ "$out" "$DLABEL"
printf '%s' "$DVALUE" > "$W/data.bin"
"${M[@]}" --login --pin "$NEWPIN" --write-object "$W/data.bin" --type data --label "$DLABEL" >/dev/null 2>&1

# ---- nothing readable on disk ------------------------------------------
python3 - "$STORE" "$KEYHEX" "$LABEL" "$ID" "$DLABEL" "$DVALUE" "$CLABEL" "$SO" "$PIN" "$NEWPIN" "$W/cert.der" <<'PY'
import os, sys
store, keyhex, *needles = sys.argv[1:]
cert = open(needles.pop(), "rb").read()
blobs = {name: open(os.path.join(store, name), "rb").read() for name in os.listdir(store)}
bad = 0
checks = [("key value", bytes.fromhex(keyhex)), ("id", bytes.fromhex(needles[1])),
          ("certificate", cert[:64])]
checks += [(n, n.encode()) for i, n in enumerate(needles) if i != 1]
for what, needle in checks:
    for name, data in blobs.items():
        if needle in data or needle.hex().encode() in data:
            print(f"FAIL: {what} found in {name}")
            bad += 1
print(f"# searched {len(blobs)} files for {len(checks)} secrets")
sys.exit(1 if bad else 0)
PY
tp_check "the store files contain no key value, label, id, certificate or PIN" test $? = 0

# ---- disaster recovery: clevis decrypt, no module -------------------------
"$RECOVER" jwe "$STORE" > "$W/root.jwe"
tp_check "the sealed root secret is a compact JWE" grep -Eq '^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]*){4}$' "$W/root.jwe"
clevis decrypt < "$W/root.jwe" > "$W/root.bin"
tp_check "clevis decrypt recovers a 32-byte root secret" test "$(stat -c %s "$W/root.bin")" = 32
"$RECOVER" dump "$STORE" "$W/root.bin" > "$W/public.json"
cat "$W/public.json"
tp_check "with R alone: the public data object, value included" \
	python3 -c 'import json,sys; o=[json.loads(l) for l in open(sys.argv[1])]; sys.exit(0 if any(a.get("attributes",{}).get("0x3")==sys.argv[2].encode().hex() and a["attributes"].get("0x11")==sys.argv[3].encode().hex() for a in o) else 1)' \
	"$W/public.json" "$DLABEL" "$DVALUE"
tp_check "with R alone: the private key stays closed" grep -q '"skipped": "needs a PIN"' "$W/public.json"
"$RECOVER" dump "$STORE" "$W/root.bin" --pin "$NEWPIN" > "$W/all.json"
tp_check "with R and the user PIN: the private key's value" grep -q "\"0x11\": \"$KEYHEX\"" "$W/all.json"
"$RECOVER" dump "$STORE" "$W/root.bin" --so-pin "$SO" > "$W/all-so.json"
tp_check "with R and the SO PIN: the private key's value" grep -q "\"0x11\": \"$KEYHEX\"" "$W/all-so.json"
rm -f "$W/root.bin"

# ---- restart and outage ------------------------------------------------
out=$("${M[@]}" --login --pin "$NEWPIN" -O 2>&1)
tp_check "a new process (a restart) finds the key" grep -q "$LABEL" <<<"$out"
"$TANG_CTL" stop
out=$("${M[@]}" --login --pin "$NEWPIN" -O 2>&1); echo "$out"
tp_check "Tang away: login fails with CKR_DEVICE_ERROR" grep -q CKR_DEVICE_ERROR <<<"$out"
out=$("${M[@]}" -L 2>&1)
tp_check "Tang away: the PIN was not counted" bash -c '! grep -qi "count low" <<<"$1"' _ "$out"
"$TANG_CTL" start
out=$("${M[@]}" --login --pin "$NEWPIN" -O 2>&1)
tp_check "Tang back: the key is there" grep -q "$LABEL" <<<"$out"

# ---- a locked user PIN, reset by the SO ----------------------------------
for i in $(seq 10); do "${M[@]}" --login --pin 0000 -O >/dev/null 2>&1; done
out=$("${M[@]}" -L 2>&1)
tp_check "10 wrong PINs (10 processes): -L shows the user PIN locked" grep -qi 'user PIN locked' <<<"$out"
out=$("${M[@]}" --login --pin "$NEWPIN" -O 2>&1)
tp_check "a locked PIN refuses even the right PIN (CKR_PIN_LOCKED)" grep -q CKR_PIN_LOCKED <<<"$out"
out=$("${M[@]}" --init-pin --login --login-type so --so-pin "$SO" --pin "$PIN" 2>&1); echo "$out"
tp_check "the SO sets a new user PIN (--init-pin)" grep -qi 'User PIN successfully initialized' <<<"$out"
out=$("${M[@]}" --login --pin "$PIN" -O 2>&1)
tp_check "the objects survived the reset" grep -q "$LABEL" <<<"$out"
out=$("${M[@]}" -L 2>&1)
tp_check "the counter is reset" bash -c '! grep -qi "locked\|count low" <<<"$1"' _ "$out"

# ---- "pin": false: Tang alone, pkcs11-tool --login with no PIN -------------
cat > "$W/nopin.conf" <<CONF
{ "tokens": [ { "label": "tang", "tang": { "url": "$TANG_URL", "thp": "$TANG_THP" },
                "store": "$W/nopin", "pin": false } ] }
CONF
N=(env TANG_PKCS11_CONF="$W/nopin.conf" "${TPH[@]}" pkcs11-tool --module "$TANG_PKCS11_MODULE")
out=$("${N[@]}" --init-token --label tang --so-pin "$SO" 2>&1); echo "$out"
out=$("${N[@]}" -L 2>&1); echo "$out"
tp_check '"pin": false: protected authentication path ("PIN pad present"), initialized' \
	bash -c 'grep -q "PIN pad present" <<<"$1" && grep -q "token initialized" <<<"$1"' _ "$out"
out=$("${N[@]}" --login --write-object "$W/data.bin" --type data --label nopin-private --private 2>&1 </dev/null); echo "$out"
tp_check '"pin": false: --login with no PIN writes a private object' grep -q 'Data object' <<<"$out"
out=$("${N[@]}" -O 2>&1)
tp_check '"pin": false: without login the private object is hidden' bash -c '! grep -q nopin-private <<<"$1"' _ "$out"
out=$("${N[@]}" --login -O 2>&1 </dev/null)
tp_check '"pin": false: --login with no PIN shows it' grep -q nopin-private <<<"$out"
out=$("${N[@]}" --login --pin whatever -O 2>&1)
tp_check '"pin": false: a PIN given anyway is ignored' grep -q nopin-private <<<"$out"

# ---- damaged store: refused and untouched --------------------------------
cp -a "$STORE" "$W/bad"
printf 'XXXX' | dd of="$W/bad/metadata" bs=1 seek=0 conv=notrunc 2>/dev/null
cat > "$W/bad.conf" <<CONF
{ "tokens": [ { "label": "tang", "tang": { "url": "$TANG_URL", "thp": "$TANG_THP" },
                "store": "$W/bad" } ] }
CONF
before=$(cd "$W/bad" && sha256sum * | sha256sum)
out=$(TANG_PKCS11_CONF=$W/bad.conf "${M[@]}" -L 2>&1); echo "$out"
tp_check "a damaged store: -L still lists the token" grep -Eq 'token label +: tang' <<<"$out"
out=$(TANG_PKCS11_CONF=$W/bad.conf "${M[@]}" -O 2>&1); echo "$out"
tp_check "a damaged store: sessions refused (CKR_TOKEN_NOT_RECOGNIZED)" grep -q CKR_TOKEN_NOT_RECOGNIZED <<<"$out"
out=$(TANG_PKCS11_CONF=$W/bad.conf "${M[@]}" --init-token --label tang --so-pin "$SO" 2>&1); echo "$out"
after=$(cd "$W/bad" && sha256sum * | sha256sum)
tp_check "a damaged store is left byte-identical" test "$before" = "$after"
tp_done
