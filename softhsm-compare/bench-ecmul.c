/* tp-bench-ecmul: the client-side floor of one Tang recovery, the two P-521
 * scalar multiplications it cannot avoid (TANG_PROTOCOL.md §5):
 * E = e·G (fixed base) and T = e·S (variable base), with EC_POINT_mul.
 *
 * Run under `valgrind --tool=callgrind --instr-atstart=no`: only the two
 * multiplications are instrumented (CALLGRIND_START/STOP_INSTRUMENTATION),
 * after a warm-up pair so one-time table set-up is not counted.  With an
 * argument "G" or "S" only that one multiplication is measured.  Without
 * valgrind it runs and prints nothing useful (the macros are no-ops). */
#include <stdio.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/obj_mac.h>
#include <valgrind/callgrind.h>

int main(int argc, char **argv)
{
	const char *which = argc > 1 ? argv[1] : "both";
	EC_GROUP *g = EC_GROUP_new_by_curve_name(NID_secp521r1);
	BN_CTX *ctx = BN_CTX_new();
	BIGNUM *s = BN_new(), *e = BN_new();
	EC_POINT *S = EC_POINT_new(g), *E = EC_POINT_new(g), *T = EC_POINT_new(g);
	const BIGNUM *n = EC_GROUP_get0_order(g);
	if (!g || !ctx || !s || !e || !S || !E || !T)
		return 1;
	/* The server key S = s·G, and a warm-up pair. */
	if (!BN_rand_range(s, n) || !EC_POINT_mul(g, S, s, NULL, NULL, ctx) ||
	    !BN_rand_range(e, n) || !EC_POINT_mul(g, E, e, NULL, NULL, ctx) ||
	    !EC_POINT_mul(g, T, NULL, S, e, ctx) || !BN_rand_range(e, n))
		return 1;

	int ok = 1;
	CALLGRIND_START_INSTRUMENTATION;
	if (strcmp(which, "S") != 0)
		ok &= EC_POINT_mul(g, E, e, NULL, NULL, ctx);
	if (strcmp(which, "G") != 0)
		ok &= EC_POINT_mul(g, T, NULL, S, e, ctx);
	CALLGRIND_STOP_INSTRUMENTATION;

	printf("%s\n", ok ? "ok" : "EC_POINT_mul failed");
	EC_POINT_free(S);
	EC_POINT_free(E);
	EC_POINT_free(T);
	BN_free(s);
	BN_free(e);
	BN_CTX_free(ctx);
	EC_GROUP_free(g);
	return ok ? 0 : 1;
}
