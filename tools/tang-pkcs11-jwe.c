/* tang-pkcs11-jwe: recover and produce Clevis JWEs (the "tang" pin) through
 * the tang-pkcs11 PKCS#11 module, with nothing but PKCS#11 calls.
 *
 *   tang-pkcs11-jwe decrypt [--module PATH] [--token LABEL] [--config FILE]
 *                           [--in FILE] [--out FILE]
 *   tang-pkcs11-jwe encrypt [the same options]
 *
 * decrypt reads a compact Clevis JWE (what `clevis encrypt tang` writes) and
 * writes the plaintext; the module performs the McCallum-Relyea exchange
 * with the token's Tang server.  encrypt reads a plaintext and writes a
 * compact Clevis JWE that `clevis decrypt` opens; it needs no network.
 * Input is stdin unless --in, output stdout unless --out.
 *
 * This file is also the example for application writers (docs/jwe-tool.md):
 * the whole PKCS#11 sequence is in main(), in the order an application makes
 * the calls.  The module is loaded with dlopen(); nothing here knows the
 * module's internals, only its public header tang-pkcs11.h (CKM_TANG_JWE).
 *
 * Exit status:
 *   0  success
 *   1  the module refused the operation (for decrypt: a JWE that is not a
 *      valid Clevis tang JWE for this token or was tampered with,
 *      CKR_ENCRYPTED_DATA_INVALID, or the Tang server could not be used,
 *      CKR_DEVICE_ERROR; the module's log says why).  Nothing is written.
 *   2  usage error
 *   3  the module could not be loaded or initialized, or has no such token,
 *      no Tang key, or no CKM_TANG_JWE
 *   4  reading the input or writing the output failed (or out of memory);
 *      a partly written --out file is removed
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <p11-kit/pkcs11.h>

#include "tang-pkcs11.h"

#ifndef TP_DEFAULT_MODULE
#define TP_DEFAULT_MODULE "/usr/lib/x86_64-linux-gnu/pkcs11/tang-pkcs11.so"
#endif

enum { EXIT_REFUSED = 1, EXIT_USAGE = 2, EXIT_SETUP = 3, EXIT_IO = 4 };

static const char *prog = "tang-pkcs11-jwe";

/* ---- messages --------------------------------------------------------- */

static const char *rv_name(CK_RV rv)
{
	static char other[32];
	switch (rv) {
#define N(x) case x: return #x
	N(CKR_OK); N(CKR_HOST_MEMORY); N(CKR_SLOT_ID_INVALID); N(CKR_GENERAL_ERROR);
	N(CKR_FUNCTION_FAILED); N(CKR_ARGUMENTS_BAD); N(CKR_DATA_INVALID);
	N(CKR_DATA_LEN_RANGE); N(CKR_DEVICE_ERROR); N(CKR_DEVICE_MEMORY);
	N(CKR_DEVICE_REMOVED); N(CKR_ENCRYPTED_DATA_INVALID);
	N(CKR_ENCRYPTED_DATA_LEN_RANGE); N(CKR_FUNCTION_CANCELED);
	N(CKR_FUNCTION_NOT_SUPPORTED); N(CKR_KEY_HANDLE_INVALID);
	N(CKR_KEY_TYPE_INCONSISTENT); N(CKR_KEY_FUNCTION_NOT_PERMITTED);
	N(CKR_MECHANISM_INVALID); N(CKR_MECHANISM_PARAM_INVALID);
	N(CKR_OBJECT_HANDLE_INVALID); N(CKR_OPERATION_ACTIVE);
	N(CKR_OPERATION_NOT_INITIALIZED); N(CKR_SESSION_HANDLE_INVALID);
	N(CKR_TOKEN_NOT_PRESENT); N(CKR_TOKEN_NOT_RECOGNIZED);
	N(CKR_USER_NOT_LOGGED_IN); N(CKR_BUFFER_TOO_SMALL);
	N(CKR_CRYPTOKI_NOT_INITIALIZED); N(CKR_CRYPTOKI_ALREADY_INITIALIZED);
	N(CKR_WRAPPED_KEY_INVALID); N(CKR_WRAPPED_KEY_LEN_RANGE);
	N(CKR_KEY_SIZE_RANGE); N(CKR_KEY_UNEXTRACTABLE); N(CKR_TEMPLATE_INCONSISTENT);
	N(CKR_TEMPLATE_INCOMPLETE); N(CKR_ATTRIBUTE_VALUE_INVALID);
	N(CKR_ACTION_PROHIBITED); N(CKR_CANT_LOCK); N(CKR_SESSION_COUNT);
	N(CKR_PIN_INCORRECT); N(CKR_PIN_LOCKED);
#undef N
	}
	snprintf(other, sizeof other, "CKR_0x%08lx", (unsigned long)rv);
	return other;
}

static void die_rv(int status, const char *call, CK_RV rv, const char *hint)
{
	fprintf(stderr, "%s: %s failed: %s%s%s\n", prog, call, rv_name(rv),
		hint ? ": " : "", hint ? hint : "");
	exit(status);
}

/* What ulDeviceError (CK_SESSION_INFO) says after a CKR_DEVICE_ERROR. */
static const char *device_error_name(CK_ULONG e)
{
	switch (e) {
	case TANG_PKCS11_DEVERR_UNREACHABLE: return "the Tang server is unreachable";
	case TANG_PKCS11_DEVERR_TIMEOUT: return "the Tang server timed out";
	case TANG_PKCS11_DEVERR_BAD_REQUEST: return "the Tang server answered 400 (bad request)";
	case TANG_PKCS11_DEVERR_REFUSED: return "the Tang server refused (HTTP 403)";
	case TANG_PKCS11_DEVERR_UNKNOWN_KEY:
		return "the Tang server no longer has the JWE's key (unknown key, HTTP 404)";
	case TANG_PKCS11_DEVERR_HTTP: return "the Tang server answered an HTTP error";
	case TANG_PKCS11_DEVERR_BAD_REPLY: return "the Tang server's reply was invalid";
	case TANG_PKCS11_DEVERR_UNTRUSTED: return "the Tang server's advertisement is not trusted";
	default: return "the Tang server could not be used";
	}
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: %s decrypt|encrypt [--module PATH] [--token LABEL] [--config FILE]\n"
		"                       [--in FILE] [--out FILE]\n"
		"  decrypt   read a Clevis JWE (tang pin), write its plaintext\n"
		"  encrypt   read a plaintext, write a Clevis JWE that `clevis decrypt` opens\n"
		"  --module  the PKCS#11 module (default: $TANG_PKCS11_MODULE, else\n"
		"            %s)\n"
		"  --token   token label (default: the first slot with a token)\n"
		"  --config  module configuration file (passed as config=FILE in\n"
		"            C_Initialize's pReserved; default: $TANG_PKCS11_CONF, else\n"
		"            the module's default)\n"
		"  --in, --out  files instead of stdin and stdout\n"
		"exit status: 0 ok, 1 refused by the module (CK_RV and cause on stderr),\n"
		"2 usage, 3 module/token/key/mechanism not found, 4 input/output error\n",
		prog, TP_DEFAULT_MODULE);
}

/* ---- files ------------------------------------------------------------ */

static unsigned char *read_all(int fd, size_t *len)
{
	size_t cap = 4096, n = 0;
	unsigned char *buf = malloc(cap);
	while (buf) {
		if (n == cap) {
			unsigned char *bigger = realloc(buf, cap * 2);
			if (!bigger)
				break;
			buf = bigger;
			cap *= 2;
		}
		ssize_t r = read(fd, buf + n, cap - n);
		if (r == 0) {
			*len = n;
			return buf;
		}
		if (r < 0 && errno != EINTR)
			break;
		if (r > 0)
			n += (size_t)r;
	}
	free(buf);
	return NULL;
}

static bool write_all(int fd, const unsigned char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		p += w;
		n -= (size_t)w;
	}
	return true;
}

/* ---- PKCS#11 helpers -------------------------------------------------- */

/* The slot whose token has this label, or the first slot with a token. */
static bool find_slot(CK_FUNCTION_LIST *p11, const char *label, CK_SLOT_ID *slot)
{
	CK_ULONG n = 0;
	CK_RV rv = p11->C_GetSlotList(CK_TRUE, NULL, &n);
	if (rv != CKR_OK)
		die_rv(EXIT_SETUP, "C_GetSlotList", rv, NULL);
	CK_SLOT_ID *slots = calloc(n ? n : 1, sizeof *slots);
	if (!slots)
		die_rv(EXIT_SETUP, "calloc", CKR_HOST_MEMORY, NULL);
	rv = p11->C_GetSlotList(CK_TRUE, slots, &n);
	if (rv != CKR_OK)
		die_rv(EXIT_SETUP, "C_GetSlotList", rv, NULL);
	bool found = false;
	for (CK_ULONG i = 0; i < n && !found; i++) {
		CK_TOKEN_INFO ti;
		if (!label) {
			*slot = slots[i];
			found = true;
			break;
		}
		if (p11->C_GetTokenInfo(slots[i], &ti) != CKR_OK)
			continue;
		/* Token labels are 32 bytes, blank padded, not NUL terminated. */
		size_t len = sizeof ti.label;
		while (len > 0 && ti.label[len - 1] == ' ')
			len--;
		if (len == strlen(label) && memcmp(ti.label, label, len) == 0) {
			*slot = slots[i];
			found = true;
		}
	}
	free(slots);
	return found;
}

/* The first Tang key of this class: an EC key that can decrypt (private)
 * or encrypt (public).  Every Tang private key of the token recovers every
 * JWE bound to the token's server (the JWE names the key it was made for);
 * the public key chosen for encrypt is the server's current exchange key. */
static CK_OBJECT_HANDLE find_tang_key(CK_FUNCTION_LIST *p11, CK_SESSION_HANDLE s,
				      CK_OBJECT_CLASS cls)
{
	CK_KEY_TYPE type = CKK_EC;
	CK_BBOOL yes = CK_TRUE;
	CK_ATTRIBUTE tmpl[] = {
		{ CKA_CLASS, &cls, sizeof cls },
		{ CKA_KEY_TYPE, &type, sizeof type },
		{ cls == CKO_PRIVATE_KEY ? CKA_DECRYPT : CKA_ENCRYPT, &yes, sizeof yes },
	};
	CK_OBJECT_HANDLE key = CK_INVALID_HANDLE;
	CK_ULONG count = 0;
	CK_RV rv = p11->C_FindObjectsInit(s, tmpl, sizeof tmpl / sizeof tmpl[0]);
	if (rv != CKR_OK)
		die_rv(EXIT_SETUP, "C_FindObjectsInit", rv, NULL);
	rv = p11->C_FindObjects(s, &key, 1, &count);
	p11->C_FindObjectsFinal(s);
	if (rv != CKR_OK)
		die_rv(EXIT_SETUP, "C_FindObjects", rv, NULL);
	return count == 1 ? key : CK_INVALID_HANDLE;
}

/* ---- main ------------------------------------------------------------- */

/* The input, wiped and freed at exit whatever the path (error exits
 * included: an encrypt's input is a plaintext). */
static unsigned char *input;
static size_t in_len;

static void wipe_input(void)
{
	if (input)
		explicit_bzero(input, in_len);
	free(input);
	input = NULL;
}

int main(int argc, char **argv)
{
	const char *module = getenv("TANG_PKCS11_MODULE");
	const char *token = NULL, *config = NULL, *in = NULL, *out = NULL;
	static const struct option opts[] = {
		{ "module", required_argument, NULL, 'm' },
		{ "token", required_argument, NULL, 't' },
		{ "config", required_argument, NULL, 'c' },
		{ "in", required_argument, NULL, 'i' },
		{ "out", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;
	while ((c = getopt_long(argc, argv, "m:t:c:i:o:h", opts, NULL)) != -1) {
		switch (c) {
		case 'm': module = optarg; break;
		case 't': token = optarg; break;
		case 'c': config = optarg; break;
		case 'i': in = optarg; break;
		case 'o': out = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	if (optind != argc - 1 ||
	    (strcmp(argv[optind], "decrypt") != 0 && strcmp(argv[optind], "encrypt") != 0)) {
		usage(stderr);
		return EXIT_USAGE;
	}
	const bool decrypt = strcmp(argv[optind], "decrypt") == 0;
	if (!module || !*module)
		module = TP_DEFAULT_MODULE;

	/* Read the whole input first: the JWE (or plaintext) is one message. */
	int ifd = in ? open(in, O_RDONLY | O_CLOEXEC) : STDIN_FILENO;
	if (ifd < 0) {
		fprintf(stderr, "%s: %s: %s\n", prog, in, strerror(errno));
		return EXIT_IO;
	}
	input = read_all(ifd, &in_len);
	if (!input) {
		fprintf(stderr, "%s: reading %s: %s\n", prog, in ? in : "stdin", strerror(errno));
		return EXIT_IO;
	}
	if (in)
		close(ifd);
	atexit(wipe_input);

	/* 1. Load the module and get its function list. */
	void *dl = dlopen(module, RTLD_NOW | RTLD_LOCAL);
	if (!dl) {
		fprintf(stderr, "%s: cannot load the module: %s\n", prog, dlerror());
		return EXIT_SETUP;
	}
	CK_C_GetFunctionList get_function_list;
	*(void **)&get_function_list = dlsym(dl, "C_GetFunctionList");
	CK_FUNCTION_LIST *p11 = NULL;
	if (!get_function_list) {
		fprintf(stderr, "%s: %s is not a PKCS#11 module (no C_GetFunctionList)\n", prog,
			module);
		return EXIT_SETUP;
	}
	CK_RV rv = get_function_list(&p11);
	if (rv != CKR_OK)
		die_rv(EXIT_SETUP, "C_GetFunctionList", rv, NULL);

	/* 2. C_Initialize.  The module's configuration file may be named in
	 *    pReserved ("config=FILE", what p11-kit's x-init-reserved passes);
	 *    without it the module reads $TANG_PKCS11_CONF or its default. */
	char reserved[4200];
	CK_C_INITIALIZE_ARGS init_args = { .flags = CKF_OS_LOCKING_OK };
	if (config) {
		snprintf(reserved, sizeof reserved, "config=%s", config);
		init_args.pReserved = reserved;
	}
	rv = p11->C_Initialize(&init_args);
	if (rv != CKR_OK)
		die_rv(EXIT_SETUP, "C_Initialize", rv,
		       "is the configuration valid? (the module's log names the problem)");

	/* 3. The token, a session, and the mechanism. */
	CK_SLOT_ID slot;
	if (!find_slot(p11, token, &slot)) {
		if (token)
			fprintf(stderr, "%s: no token labelled \"%s\"\n", prog, token);
		else
			fprintf(stderr, "%s: no token (is the module configured? see "
				"TANG_PKCS11_CONF)\n", prog);
		return EXIT_SETUP;
	}
	CK_MECHANISM_INFO mi;
	rv = p11->C_GetMechanismInfo(slot, CKM_TANG_JWE, &mi);
	if (rv != CKR_OK)
		die_rv(EXIT_SETUP, "C_GetMechanismInfo(CKM_TANG_JWE)", rv,
		       "the module does not offer Clevis JWEs");
	CK_SESSION_HANDLE session;
	rv = p11->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &session);
	if (rv != CKR_OK)
		die_rv(EXIT_SETUP, "C_OpenSession", rv, NULL);

	/* 4. The Tang key: the private key recovers, the public key produces. */
	CK_OBJECT_HANDLE key = find_tang_key(p11, session,
					     decrypt ? CKO_PRIVATE_KEY : CKO_PUBLIC_KEY);
	if (key == CK_INVALID_HANDLE) {
		fprintf(stderr, "%s: the token has no Tang %s key (is the Tang server "
			"reachable, and its thumbprint the configured one?)\n", prog,
			decrypt ? "private" : "public");
		return EXIT_SETUP;
	}

	/* 5. The operation, with the two-call length convention: a first call
	 *    with a NULL buffer asks for the output length, the second fills
	 *    the buffer (and gives the exact length).  CKM_TANG_JWE takes no
	 *    parameter.  For decrypt the first call may already contact the
	 *    Tang server; either call fails with CKR_ENCRYPTED_DATA_INVALID for
	 *    a JWE the module rejects, and plaintext is only ever released
	 *    after the JWE's authentication tag was verified. */
	CK_MECHANISM mech = { CKM_TANG_JWE, NULL, 0 };
	CK_ULONG out_len = 0;
	unsigned char *output = NULL;
	const char *call = decrypt ? "C_Decrypt" : "C_Encrypt";
	rv = decrypt ? p11->C_DecryptInit(session, &mech, key)
		     : p11->C_EncryptInit(session, &mech, key);
	if (rv != CKR_OK)
		die_rv(EXIT_SETUP, decrypt ? "C_DecryptInit" : "C_EncryptInit", rv, NULL);
	rv = decrypt ? p11->C_Decrypt(session, input, in_len, NULL, &out_len)
		     : p11->C_Encrypt(session, input, in_len, NULL, &out_len);
	if (rv == CKR_OK) {
		output = malloc(out_len ? out_len : 1);
		if (!output)
			die_rv(EXIT_IO, "malloc", CKR_HOST_MEMORY, NULL);
		rv = decrypt ? p11->C_Decrypt(session, input, in_len, output, &out_len)
			     : p11->C_Encrypt(session, input, in_len, output, &out_len);
	}
	if (rv != CKR_OK) {
		char hint[200];
		CK_SESSION_INFO si = { 0 };
		free(output); /* nothing was written to it */
		if (rv == CKR_ENCRYPTED_DATA_INVALID)
			snprintf(hint, sizeof hint, "not a valid Clevis tang JWE for this token, "
				 "or tampered with (the module's log says why)");
		else if (rv == CKR_DEVICE_ERROR) {
			/* ulDeviceError tells which Tang failure it was. */
			if (p11->C_GetSessionInfo(session, &si) != CKR_OK)
				si.ulDeviceError = 0;
			snprintf(hint, sizeof hint, "%s (ulDeviceError %lu; the module's log "
				 "names the server and the kid)",
				 device_error_name(si.ulDeviceError),
				 (unsigned long)si.ulDeviceError);
		}
		else
			hint[0] = 0;
		die_rv(EXIT_REFUSED, call, rv, hint[0] ? hint : NULL);
	}

	/* 6. Write the result, wipe the plaintext, clean up. */
	int status = 0;
	int ofd = out ? open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600) : STDOUT_FILENO;
	if (ofd < 0 || !write_all(ofd, output, out_len) || (out && close(ofd) != 0)) {
		fprintf(stderr, "%s: writing %s: %s\n", prog, out ? out : "stdout", strerror(errno));
		status = EXIT_IO;
		if (out && ofd >= 0)
			unlink(out); /* no partial plaintext left behind */
	}
	if (decrypt)
		explicit_bzero(output, out_len);
	free(output);
	wipe_input();
	p11->C_CloseSession(session);
	p11->C_Finalize(NULL);
	/* No dlclose(): a module may keep threads or atexit handlers. */
	return status;
}
