#include "core/lib.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/object.h"
#include "core/session.h"
#include "core/token.h"
#include "util/ec.h"
#include "util/http.h"
#include "util/log.h"

/* init_mutex serializes C_Initialize and C_Finalize (C_Initialize reads the
 * configuration file, which must not stall the short state lock). */
static pthread_mutex_t init_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t state_mutex = PTHREAD_MUTEX_INITIALIZER;
static tp_lib *current;            /* under state_mutex */
/* In a forked child: the parents' states, abandoned (their owners, locks
 * and connections are the parent's) but kept reachable, so that leak
 * checkers in the child see memory that is deliberately kept, not lost.
 * Under state_mutex. */
static tp_lib *abandoned;
/* Libs not yet destroyed (C_Finalize'd ones may live on while an operation
 * holds them); the log file is closed with the last one.  Under
 * state_mutex. */
static unsigned long live_libs;
static atomic_ulong forks;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

void lib_lock(void)
{
	pthread_mutex_lock(&state_mutex);
}

void lib_unlock(void)
{
	pthread_mutex_unlock(&state_mutex);
}

/* The fork handlers take our two mutexes around fork() so that the child
 * never inherits them locked by a thread that does not exist there; the
 * child handler otherwise only counts (p11-kit's pattern): the child's
 * next C_Initialize does the real work. */
static void fork_prepare(void)
{
	pthread_mutex_lock(&init_mutex);
	pthread_mutex_lock(&state_mutex);
	log_fork_prepare();
}

static void fork_parent(void)
{
	log_fork_release();
	pthread_mutex_unlock(&state_mutex);
	pthread_mutex_unlock(&init_mutex);
}

static void fork_child(void)
{
	atomic_fetch_add(&forks, 1);
	log_fork_release();
	pthread_mutex_unlock(&state_mutex);
	pthread_mutex_unlock(&init_mutex);
}

static void atfork_register(void)
{
	/* Registered on first C_Initialize, never in a constructor; the
	 * module is linked -z nodelete so the handlers stay mapped. */
	pthread_atfork(fork_prepare, fork_parent, fork_child);
}

bool lib_grow(void *arr_ptr, size_t n, size_t *cap, size_t elem)
{
	void *arr;
	size_t ncap;

	if (n < *cap)
		return true;
	memcpy(&arr, arr_ptr, sizeof(arr));
	ncap = *cap ? *cap * 2 : 16;
	arr = realloc(arr, ncap * elem);
	if (!arr)
		return false;
	memcpy(arr_ptr, &arr, sizeof(arr));
	*cap = ncap;
	return true;
}

void lib_pad(unsigned char *field, size_t size, const char *s)
{
	size_t n = strlen(s);

	if (n > size) {
		/* Cut before a UTF-8 continuation byte's lead, never inside a
		 * character: the fields are UTF-8 (PKCS#11 2.40 §3.2). */
		n = size;
		while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
			n--;
	}
	memset(field, ' ', size);
	memcpy(field, s, n);
}

/* Drops one live lib; the last one closes the log file.
 *
 * The private OpenSSL context is deliberately never freed (one per
 * process, made on first C_Initialize): OpenSSL 3.0 keeps per-thread state
 * for a library context in every thread that used it, and frees it when
 * such a thread exits; after OSSL_LIB_CTX_free that exit handler touches
 * freed memory and crashes the host (seen with threads that outlive a
 * C_Finalize, which Barbican's finalize-and-retry does). */
static void live_release(void)
{
	lib_lock();
	/* LOCKED SECTION ------------------------------------------------ */
	if (--live_libs == 0)
		log_close();
	/* --------------------------------------------- END LOCKED SECTION */
	lib_unlock();
}

static void lib_free(tp_lib *lib)
{
	for (size_t i = 0; i < lib->n_sessions; i++)
		session_free(lib->sessions[i]);
	free(lib->sessions);
	object_free_all(lib->objects, lib->n_objects);
	for (size_t i = 0; i < lib->n_tokens; i++)
		token_clear(&lib->tokens[i]);
	free(lib->tokens);
	config_free(lib->cfg);
	free(lib);
}

static void lib_destroy(tp_lib *lib)
{
	lib_free(lib);
	live_release();
}

static bool is_current_locked(void)
{
	return current && current->fork_id == atomic_load(&forks);
}

CK_RV lib_acquire(tp_lib **out)
{
	CK_RV rv = CKR_CRYPTOKI_NOT_INITIALIZED;

	lib_lock();
	if (is_current_locked()) {
		current->refs++;
		*out = current;
		rv = CKR_OK;
	}
	lib_unlock();
	return rv;
}

void lib_release(tp_lib *lib)
{
	bool last;

	if (!lib)
		return;
	lib_lock();
	last = --lib->refs == 0;
	lib_unlock();
	if (last)
		lib_destroy(lib);
}

static CK_RV lib_build(const char *reserved, tp_lib **out)
{
	CK_RV rv = CKR_GENERAL_ERROR;
	tp_lib *lib = calloc(1, sizeof(*lib));
	tp_err err;

	if (!lib) {
		rv = CKR_HOST_MEMORY;
		goto out;
	}
	err = config_load(reserved, &lib->cfg);
	if (err != TP_OK) {
		/* config_load has logged file, field and problem. */
		rv = err == TP_ERR_NOMEM ? CKR_HOST_MEMORY : CKR_FUNCTION_FAILED;
		goto out;
	}
	if (lib->cfg->n_tokens) {
		lib->tokens = calloc(lib->cfg->n_tokens, sizeof(*lib->tokens));
		if (!lib->tokens) {
			rv = CKR_HOST_MEMORY;
			goto out;
		}
	}
	for (size_t i = 0; i < lib->cfg->n_tokens; i++) {
		rv = token_init(&lib->tokens[i], i + 1, &lib->cfg->tokens[i]);
		if (rv != CKR_OK)
			goto out;
		lib->n_tokens++;
	}
	lib->refs = 1;
	lib->fork_id = atomic_load(&forks);
	*out = lib;
	lib = NULL;
	rv = CKR_OK;
out:
	if (lib)
		lib_free(lib);
	return rv;
}

CK_RV lib_initialize(const CK_C_INITIALIZE_ARGS *args)
{
	CK_RV rv = CKR_GENERAL_ERROR;
	const char *reserved = NULL;
	tp_lib *lib = NULL;
	bool initialized;


	if (args) {
		int n = !!args->CreateMutex + !!args->DestroyMutex +
			!!args->LockMutex + !!args->UnlockMutex;

		/* All four callbacks or none.  Whatever is given, we always
		 * use our own pthread locks (DESIGN.md §3); CKF_OS_LOCKING_OK
		 * and CKF_LIBRARY_CANT_CREATE_OS_THREADS change nothing since
		 * we create no threads. */
		if (n != 0 && n != 4)
			return CKR_ARGUMENTS_BAD;
		/* p11-kit passes its x-init-reserved string here. */
		reserved = args->pReserved;
	}

	pthread_once(&atfork_once, atfork_register);
	pthread_mutex_lock(&init_mutex);

	lib_lock();
	initialized = is_current_locked();
	if (!initialized && current) {
		/* A forked child of an initialized parent: the parent's state
		 * (connections, locks, OpenSSL context) is abandoned, never
		 * freed here, since its owners live in the parent. */
		current->abandoned = abandoned;
		abandoned = current;
		current = NULL;
		live_libs = 0;
	}
	lib_unlock();
	if (initialized) {
		rv = CKR_CRYPTOKI_ALREADY_INITIALIZED;
		goto out;
	}

	log_open();
	http_global_init();
	lib_lock();
	/* LOCKED SECTION ------------------------------------------------ */
	/* The private OpenSSL context comes first: even the serial numbers
	 * are hashed in it, never in the host's default context. */
	if (ossl_ctx_init() != TP_OK) {
		rv = CKR_FUNCTION_FAILED;
	} else {
		live_libs++;
		rv = CKR_OK;
	}
	/* --------------------------------------------- END LOCKED SECTION */
	lib_unlock();
	if (rv != CKR_OK) {
		log_error("C_Initialize: cannot create the private OpenSSL context");
		goto out;
	}
	rv = lib_build(reserved, &lib);
	if (rv != CKR_OK) {
		live_release();
		goto out;
	}
	lib_lock();
	current = lib;
	lib_unlock();
out:
	pthread_mutex_unlock(&init_mutex);
	return rv;
}

CK_RV lib_finalize(void *reserved)
{
	CK_RV rv = CKR_CRYPTOKI_NOT_INITIALIZED;
	tp_lib *lib = NULL;

	if (reserved)
		return CKR_ARGUMENTS_BAD;
	pthread_mutex_lock(&init_mutex);
	lib_lock();
	if (is_current_locked()) {
		lib = current;
		lib->finalized = true;
		current = NULL;
		rv = CKR_OK;
	}
	lib_unlock();
	/* Operations still running in other threads hold their own
	 * references; the last one frees the state. */
	lib_release(lib);
	pthread_mutex_unlock(&init_mutex);
	return rv;
}

CK_RV lib_info(CK_INFO *info)
{
	if (!info)
		return CKR_ARGUMENTS_BAD;
	memset(info, 0, sizeof(*info));
	info->cryptokiVersion.major = 2;
	info->cryptokiVersion.minor = 40;
	lib_pad(info->manufacturerID, sizeof(info->manufacturerID), "tang-pkcs11");
	info->flags = 0;
	lib_pad(info->libraryDescription, sizeof(info->libraryDescription),
		"Tang PKCS#11 module");
	info->libraryVersion.major = 0;
	info->libraryVersion.minor = 1;
	return CKR_OK;
}
