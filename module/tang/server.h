/* A configured Tang server: its advertisement cache and the recovery
 * exchange.  Thread-safe; never holds its lock across network I/O. */
#ifndef TP_TANG_SERVER_H
#define TP_TANG_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "tang/adv.h"
#include "util/err.h"

typedef struct tp_tang_server tp_tang_server;

/* url verbatim; thp and adv_jws may be NULL (but not both, config checks);
 * timeout in seconds bounds every network operation end to end. */
tp_tang_server *tang_server_new(const char *url, const char *thp,
				const char *adv_jws, long timeout_s);
void tang_server_free(tp_tang_server *srv);
const char *tang_server_url(const tp_tang_server *srv);

/* The exchange keys of the verified advertisement: the configured adv, or
 * GET url/adv/<thp> on first need (then cached for the server's lifetime).
 * refetch nonzero forces a new fetch (an unknown kid was asked for).  A
 * failed fetch is not retried for TP_ADV_RETRY_S seconds (returns the same
 * error at once).  *keys is a malloc'd copy owned by the caller. */
#define TP_ADV_RETRY_S 2
tp_err tang_server_keys(tp_tang_server *srv, int refetch,
			tp_exchange_key **keys, size_t *n_keys);

/* The payload ({"keys":[...]}, alg and key_ops kept) of the advertisement
 * the cached keys come from, as a deep copy the caller owns: what a Clevis
 * JWE carries as clevis.tang.adv.  No network: TP_ERR_GENERAL (logged) when
 * no advertisement was verified yet (tang_server_keys did not succeed). */
tp_err tang_server_payload(tp_tang_server *srv, json_t **payload);

/* The McCallum-Relyea recovery with exchange key `key` (TANG_PROTOCOL.md §5):
 * given the client point C (peer, uncompressed, already validated by the
 * caller or validated here: TP_ERR_INPUT), returns z = x(s·C), field_len
 * bytes into z (z_len must be key->curve->field_len).  The server sees only
 * the blinded X = C + e·G.  Validates the server's reply Y on the curve
 * (TP_ERR_BAD_REPLY).  HTTP 400/403/404 map to TP_ERR_BAD_REQUEST /
 * TP_ERR_REFUSED / TP_ERR_UNKNOWN_KEY.  Logs one line on failure naming the
 * server and kid. */
tp_err tang_recover(tp_tang_server *srv, const tp_exchange_key *key,
		    const uint8_t *peer, size_t peer_len,
		    uint8_t *z, size_t z_len);

#endif
