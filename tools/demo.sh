#!/bin/bash
# demo.sh: the Tang key as a PKCS#11 key, with standard tools only.
#
# Runs next to a Tang server started by tests/fixtures/with-tangd (which
# exports TANG_URL, TANG_CTL, TANG_PKCS11_CONF, ...) and the module named by
# TANG_PKCS11_MODULE.  ./tools/run-demo does all of that for you.
#   1. provisioning: read the Tang public key off the token (pkcs11-tool),
#      derive a secret against it with openssl from a throw-away key, keep
#      only the throw-away public half
#   2. recovery: pkcs11-tool --derive with that public half, through the
#      module and the Tang server, gives the same secret
#   3. Clevis JWEs: a secret bound with `clevis encrypt tang` is recovered
#      through the module (tools/tang-pkcs11-jwe decrypt), and a JWE made
#      by the module (tang-pkcs11-jwe encrypt, offline) opens with
#      `clevis decrypt`
#   4. a sealed store: token "vault" keeps persistent objects (an AES key
#      made on the token, a data object) in files that are useless without
#      Tang; a new process (a restart) finds them again
#   5. refusal: once Tang is stopped the token can neither derive, nor
#      recover the JWE, nor open its stored objects
# Exit status 0 when all of them behave as described.
set -u
: "${TANG_PKCS11_MODULE:?path of tang-pkcs11.so}" "${TANG_CTL:?run under tests/fixtures/with-tangd}" \
	"${TANG_URL:?}" "${TANG_THP:?}" "${TANG_SERVER_LOG:?}"
W=$(mktemp -d "${TANG_TMP:-/tmp}/demo.XXXXXX")
trap 'rm -rf "$W"' EXIT
cd "$W"
ok=true
b= n=
if [ -t 1 ]; then b=$(tput bold 2>/dev/null || true); n=$(tput sgr0 2>/dev/null || true); fi
step() { echo; echo "${b}== $*${n}"; }
run() { # show the command as a person would type it, then run it
	case $1 in
	p11) echo "\$ pkcs11-tool --module $TANG_PKCS11_MODULE ${*:2}" ;;
	jwe_tool) echo "\$ tang-pkcs11-jwe ${*:2}" ;;
	*) echo "\$ $*" ;;
	esac
	"$@"
}
fail() { echo "${b}!! $*${n}"; ok=false; }
# (TP_PRELOAD: a sanitizer runtime to preload, see tools/run-sanitizers.)
p11() { ${TP_PRELOAD:+env LD_PRELOAD="$TP_PRELOAD"} pkcs11-tool --module "$TANG_PKCS11_MODULE" "$@"; }
# Output of a command that is expected to fail, stdout and stderr merged in
# the order they were written (line-buffered stdout).
# (Not under a sanitizer run: stdbuf's own LD_PRELOAD would come first.)
merged() { if [ -z "${TP_PRELOAD:-}" ] && command -v stdbuf >/dev/null; then stdbuf -oL -eL "$@" 2>&1; else "$@" 2>&1; fi; }
# tang-pkcs11-jwe: next to the module in a build tree, else the installed one.
JWE_TOOL=${TANG_PKCS11_JWE:-$(realpath -m "$(dirname "$TANG_PKCS11_MODULE")/../tools/tang-pkcs11-jwe")}
[ -x "$JWE_TOOL" ] || JWE_TOOL=$(command -v tang-pkcs11-jwe || echo tang-pkcs11-jwe)
jwe_tool() { "$JWE_TOOL" "$@"; }

step "A Tang server runs at $TANG_URL (tangd, fresh keys in $TANG_DB)"
echo "Configure the token: pin the server by the thumbprint of its signing key,"
echo "and keep a copy of its advertisement (as a clevis JWE does), so the token"
echo "knows its Tang key even while the server is down."
run curl -sf -o adv.jws "$TANG_URL/adv"
echo "A second token, \"vault\", has a sealed store for persistent objects."
cat > tang-pkcs11.conf <<CONF
{ "tokens": [ { "label": "tang",
                "tang": { "url": "$TANG_URL", "thp": "$TANG_THP", "adv": "adv.jws" },
                "timeout": 5 },
              { "label": "vault",
                "tang": { "url": "$TANG_URL", "thp": "$TANG_THP", "adv": "adv.jws" },
                "store": "vault-store", "timeout": 5 } ] }
CONF
export TANG_PKCS11_CONF=$W/tang-pkcs11.conf
echo "\$ cat \$TANG_PKCS11_CONF"
cat "$TANG_PKCS11_CONF"

step "The token, as any PKCS#11 program sees it"
run p11 --list-token-slots 2>&1 | grep -E '^\$|Slot|token label|token flags'
run p11 --list-objects --type pubkey 2>&1
id=$(p11 --list-objects --type pubkey 2>/dev/null | awk '/^ *ID:/ { print $2; exit }')
[ -n "$id" ] || { fail "no Tang public key on the token (is Tang reachable?)"; exit 1; }
echo "The Tang exchange key has CKA_ID $id (its JWK thumbprint)."

step "1. Provisioning: read the Tang public key off the token"
run p11 --read-object --type pubkey --id "$id" -o tang_pub.der 2>&1
run openssl pkey -pubin -inform DER -in tang_pub.der -out tang_pub.pem
echo "\$ openssl pkey -pubin -in tang_pub.pem -noout -text | head -n 1"
openssl pkey -pubin -in tang_pub.pem -noout -text | head -n 1

step "1. Provisioning: a throw-away key pair derives a secret against it (OpenSSL only, no Tang)"
run openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-521 -out throwaway.pem
run openssl pkey -in throwaway.pem -pubout -outform DER -out throwaway_pub.der
run openssl pkeyutl -derive -inkey throwaway.pem -peerkey tang_pub.pem -out secret.bin
echo "secret (66 bytes), SHA-256: $(sha256sum < secret.bin | cut -c1-64)"
echo "Deleting the throw-away private key: only its public half is kept."
run rm -f throwaway.pem
loglines=$(wc -l < "$TANG_SERVER_LOG")

step "2. Recovery: the token derives with the kept public half (McCallum-Relyea exchange with Tang)"
run p11 --derive -m ECDH1-DERIVE --id "$id" --input-file throwaway_pub.der --output-file recovered.bin 2>&1
echo "recovered,           SHA-256: $(sha256sum < recovered.bin 2>/dev/null | cut -c1-64)"
if cmp -s secret.bin recovered.bin; then
	echo "${b}SAME SECRET: recovered through the module and Tang.${n}"
else
	fail "the recovered secret differs from the provisioned one"
fi
echo "What the Tang server saw (it only ever gets a blinded point):"
tail -n +$((loglines + 1)) "$TANG_SERVER_LOG" | grep POST | sed 's/^/  tangd: /'

if ! command -v clevis >/dev/null; then
	step "3. Clevis JWEs"
	fail "clevis is missing (apt-get install clevis): the JWE steps cannot run"
	: > disk.jwe
else
step "3. Clevis JWEs: a secret bound with clevis, recovered through the token"
echo "(tang-pkcs11-jwe makes PKCS#11 calls only: C_Decrypt/C_Encrypt with CKM_TANG_JWE;"
echo " tool: $JWE_TOOL)"
head -c 24 /dev/urandom | base64 > disk-secret.txt
echo "a secret: $(cat disk-secret.txt)"
clevis_cfg='{"url":"'$TANG_URL'","thp":"'$TANG_THP'"}'
echo "\$ clevis encrypt tang '$clevis_cfg' < disk-secret.txt > disk.jwe"
clevis encrypt tang "$clevis_cfg" < disk-secret.txt > disk.jwe || fail "clevis encrypt tang failed"
echo "(disk.jwe: $(wc -c < disk.jwe) bytes; clevis fetched and verified the advertisement)"
loglines=$(wc -l < "$TANG_SERVER_LOG")
run jwe_tool decrypt --in disk.jwe --out recovered.txt
if cmp -s disk-secret.txt recovered.txt; then
	echo "recovered: $(cat recovered.txt)"
	echo "${b}SAME SECRET: clevis' JWE recovered through the module and Tang.${n}"
else
	fail "tang-pkcs11-jwe decrypt did not give back clevis' secret"
fi
tail -n +$((loglines + 1)) "$TANG_SERVER_LOG" | grep POST | sed 's/^/  tangd: /'

step "3. Clevis JWEs: the token makes one (offline), clevis opens it"
head -c 24 /dev/urandom | base64 > token-secret.txt
echo "a secret: $(cat token-secret.txt)"
if run jwe_tool encrypt --in token-secret.txt --out token.jwe; then
	echo "(token.jwe: $(wc -c < token.jwe) bytes, $(tr -cd . < token.jwe | wc -c) dots: a compact Clevis JWE, made without contacting Tang)"
	echo "\$ clevis decrypt < token.jwe > opened.txt"
	clevis decrypt < token.jwe > opened.txt
fi
if [ -s opened.txt ] && cmp -s token-secret.txt opened.txt; then
	echo "opened: $(cat opened.txt)"
	echo "${b}SAME SECRET: clevis decrypt opened the module's JWE.${n}"
else
	fail "clevis decrypt did not open the module's JWE"
fi
fi

step "4. A sealed store: persistent token objects that only Tang can open"
vault() { p11 --token-label vault "$@"; }
vrun() { echo "\$ pkcs11-tool --module $TANG_PKCS11_MODULE --token-label vault $*"; vault "$@"; }
vrun --init-token --label vault --so-pin so-secret 2>&1
vrun --init-pin --login --login-type so --so-pin so-secret --pin 4242 2>&1
vrun --login --pin 4242 --keygen --key-type AES:32 --label master-key --private 2>&1 | grep -v '^Using slot'
printf 'the note of the day' > note.txt
vrun --login --pin 4242 --write-object note.txt --type data --label note --private 2>&1 | grep -v '^Using slot'
echo "Each pkcs11-tool run is a new process: a restart of the consumer."
vrun --login --pin 4242 --list-objects --type secrkey 2>&1 | grep -E 'Secret Key|label'
vrun --login --pin 4242 --read-object --type data --label note -o note.out 2>&1
if cmp -s note.txt note.out; then
	echo "read back: $(cat note.out)"
	echo "${b}SURVIVED A RESTART: the objects were read back from the sealed store.${n}"
else
	fail "the data object did not come back from the store"
fi
echo "On disk (ls vault-store): $(ls vault-store | tr '\n' ' ')"
if grep -rqa -e 'master-key' -e 'the note of the day' vault-store; then
	fail "a label or value is readable in the store files"
else
	echo "${b}NOTHING READABLE ON DISK: no label, no value (grep finds neither).${n}"
fi

step "5. Refusal: stop the Tang server and try again"
run "$TANG_CTL" stop
refused() { # refused CMD...: show it, run it, expect failure with CKR_DEVICE_ERROR
	local shown=$1; shift
	echo "\$ $shown"
	out=$(merged "$@")
	rc=$?
	echo "$out"
	if [ $rc != 0 ] && grep -q CKR_DEVICE_ERROR <<<"$out"; then
		echo "${b}REFUSED with CKR_DEVICE_ERROR (exit $rc): without Tang the secret cannot be recovered.${n}"
	else
		fail "expected CKR_DEVICE_ERROR with Tang stopped (exit $rc)"
	fi
}
refused "pkcs11-tool --module $TANG_PKCS11_MODULE --derive -m ECDH1-DERIVE --id $id --input-file throwaway_pub.der --output-file refused.bin" \
	${TP_PRELOAD:+env LD_PRELOAD="$TP_PRELOAD"} pkcs11-tool --module "$TANG_PKCS11_MODULE" --derive -m ECDH1-DERIVE --id "$id" --input-file throwaway_pub.der --output-file refused.bin
[ -s disk.jwe ] && refused "tang-pkcs11-jwe decrypt --in disk.jwe" "$JWE_TOOL" decrypt --in disk.jwe
refused "pkcs11-tool --module $TANG_PKCS11_MODULE --token-label vault --login --pin 4242 --read-object --type data --label note -o refused.txt" \
	pkcs11-tool --module "$TANG_PKCS11_MODULE" --token-label vault --login --pin 4242 --read-object --type data --label note -o refused.txt
if [ -n "${TANG_PKCS11_LOG:-}" ] && [ -s "$TANG_PKCS11_LOG" ]; then
	echo "The module's log says:"
	grep -v -i debug "$TANG_PKCS11_LOG" | tail -n 2 | sed 's/^/  /'
fi
"$TANG_CTL" start >/dev/null

echo
if $ok; then echo "${b}Demo complete: provisioning, recovery, Clevis JWEs both ways, the sealed store and refusal all behaved as expected.${n}"; exit 0; fi
echo "${b}Demo FAILED (see the !! lines above).${n}"
exit 1
