# lib.sh: helpers for the shell end-to-end tests (sourced; bash).
# Expects the with-tangd environment (TANG_DB, TANG_URL, TANG_CTL, ...)
# and TANG_PKCS11_MODULE.
failures=0
tp_skip() {
	echo "SKIP: $*"
	[ "${CI:-}" = true ] && { echo "FAIL: CI=true: a missing peer is a failure"; exit 1; }
	exit 77
}
tp_need() { for c in "$@"; do command -v "$c" >/dev/null || tp_skip "$c is missing"; done; }
# Programs that load the module (pkcs11-tool, p11-kit) run as "${TPH[@]}"
# CMD...: under tools/run-sanitizers TP_PRELOAD names the sanitizer
# runtime of a sanitizer-built module, preloaded into those programs only.
TPH=()
[ -n "${TP_PRELOAD:-}" ] && TPH=(env "LD_PRELOAD=$TP_PRELOAD")
tp_ok() { echo "ok - $*"; }
tp_fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
tp_check() { # tp_check "what" command...
	local what=$1; shift
	if "$@"; then tp_ok "$what"; else tp_fail "$what"; fi
}
tp_done() {
	echo "# $failures failed"
	[ "$failures" = 0 ]
}
: "${TANG_PKCS11_MODULE:?run through meson test}" "${TANG_DB:?run under tests/fixtures/with-tangd}"

# The server's current exchange key: its file, kid (S256 thumbprint) and
# CKA_ID in hex.
tp_ecmr_file() { grep -l '"ECMR"' "$TANG_DB"/*.jwk | head -n1; }
tp_kid() { basename "$(tp_ecmr_file)" .jwk; }
tp_idhex() {
	python3 -c 'import base64,sys; s=sys.argv[1]; print(base64.urlsafe_b64decode(s+"="*(-len(s)%4)).hex())' "$(tp_kid)"
}
# DER SubjectPublicKeyInfo of the server's exchange key, from its JWK.
tp_server_spki() { # tp_server_spki OUT.der
	python3 - "$(tp_ecmr_file)" "$1" <<'PY'
import base64, json, sys
b = lambda s: base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
j = json.load(open(sys.argv[1]))
assert j["crv"] == "P-521" and len(b(j["x"])) == 66 and len(b(j["y"])) == 66
# SEQUENCE { SEQUENCE { id-ecPublicKey, secp521r1 }, BIT STRING 04||X||Y }
prefix = bytes.fromhex("30819b301006072a8648ce3d020106052b81040023038186" "00")
open(sys.argv[2], "wb").write(prefix + b"\x04" + b(j["x"]) + b(j["y"]))
PY
}
tp_posts() { grep -c 'POST' "$TANG_SERVER_LOG" || true; }
