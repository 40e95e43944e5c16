#!/bin/bash
# OpenSSL's pkcs11-provider (Debian bookworm-backports) pointed at the
# module through an OpenSSL configuration that activates it beside the
# default provider, as an application would have it:
#   - the Tang public key loads from a pkcs11: URI and is the server's key;
#   - `openssl pkeyutl -derive` with the Tang private key (pkcs11: URI) gives
#     exactly the local ECDH of the throw-away key with the server's key;
#   - each of those processes exits cleanly (pkcs11-provider finalizes the
#     module from OpenSSL's atexit cleanup), several times in a row;
#   - with Tang stopped the derive fails and the process still exits with
#     an error status, not a signal.
set -u
. "$(dirname "$0")/lib.sh"
tp_need openssl cmp
provider=$(openssl version -m | sed -n 's/^MODULESDIR: "\(.*\)"$/\1/p')/pkcs11.so
[ -e "$provider" ] || tp_skip "pkcs11-provider ($provider) is missing: Debian package pkcs11-provider"

W=$TANG_TMP/pkcs11-provider
mkdir -p "$W"
cat > "$W/openssl.cnf" <<EOC
openssl_conf = openssl_init
[openssl_init]
providers = provider_sect
[provider_sect]
default = default_sect
pkcs11 = pkcs11_sect
[default_sect]
activate = 1
[pkcs11_sect]
module = $provider
pkcs11-module-path = $TANG_PKCS11_MODULE
activate = 1
EOC
ossl() { OPENSSL_CONF=$W/openssl.cnf "${TPH[@]}" openssl "$@"; }
plain() { OPENSSL_CONF=/dev/null openssl "$@"; }
# exits(rc, want): the process ended by exit(want), not by a signal.
exits() { [ "$1" = "$2" ]; }

ossl list -providers > "$W/providers.txt" 2>&1
tp_check "pkcs11-provider is active" grep -q 'PKCS#11 Provider' "$W/providers.txt"

tp_server_spki "$W/server.der"
plain pkey -pubin -inform DER -in "$W/server.der" -out "$W/server.pem"
plain genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-521 -out "$W/c.pem"
plain pkey -in "$W/c.pem" -pubout -out "$W/c_pub.pem"
plain pkeyutl -derive -inkey "$W/c.pem" -peerkey "$W/server.pem" -out "$W/local.bin"

for round in 1 2 3; do
	ossl pkey -pubin -in "pkcs11:token=tang;type=public" -pubout -outform DER \
		-out "$W/pub$round.der" > "$W/pub$round.log" 2>&1
	tp_check "round $round: public key loaded, process exited 0" exits $? 0
	tp_check "round $round: it is the server's exchange key" cmp -s "$W/pub$round.der" "$W/server.der"
	rm -f "$W/z$round.bin"
	ossl pkeyutl -derive -inkey "pkcs11:token=tang;type=private" -peerkey "$W/c_pub.pem" \
		-out "$W/z$round.bin" > "$W/derive$round.log" 2>&1
	tp_check "round $round: derive through Tang, process exited 0" exits $? 0
	tp_check "round $round: equals the local ECDH" cmp -s "$W/z$round.bin" "$W/local.bin"
done

"$TANG_CTL" stop
rm -f "$W/refused.bin"
ossl pkeyutl -derive -inkey "pkcs11:token=tang;type=private" -peerkey "$W/c_pub.pem" \
	-out "$W/refused.bin" > "$W/refused.log" 2>&1
rc=$?
tp_check "Tang stopped: the derive fails with an exit status, not a signal (rc $rc)" \
	test "$rc" -ge 1 -a "$rc" -lt 128
tp_check "Tang stopped: no secret written" test ! -s "$W/refused.bin"
"$TANG_CTL" start
tp_done
