#!/bin/bash
# Regenerates the offline advertisement fixture of the core unit tests:
# a fresh tangd key pair, the signed advertisement (as tangd serves it) and
# the values the tests expect, each computed by the jose CLI, independently
# of the module.  Run from this directory; commit the results.
set -eu
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
/usr/libexec/tangd-keygen "$T"
SIG=$(grep -l '"ES512"' "$T"/*.jwk)
EXC=$(grep -l '"ECMR"' "$T"/*.jwk)
jose jwk pub -i "$SIG" -o sig.pub.jwk
jose jwk pub -i "$EXC" -o exc.pub.jwk
jq -c -n --slurpfile s sig.pub.jwk --slurpfile e exc.pub.jwk '{keys:[$s[0],$e[0]]}' > "$T/payload.json"
jose jws sig -I "$T/payload.json" -k "$SIG" -s '{"protected":{"cty":"jwk-set+json"}}' -o adv.jws
b64u_hex() { tr '_-' '/+' | awk '{l=length($0)%4; if(l==2)$0=$0"=="; else if(l==3)$0=$0"="; print}' | base64 -d | xxd -p -c 200; }
{
	echo "kid $(jose jwk thp -i "$EXC" -a S256)"
	echo "id $(jose jwk thp -i "$EXC" -a S256 | b64u_hex)"
	echo "x $(jq -r .x exc.pub.jwk | b64u_hex)"
	echo "y $(jq -r .y exc.pub.jwk | b64u_hex)"
	echo "sigthp $(jose jwk thp -i "$SIG" -a S256)"
} > expected.txt
