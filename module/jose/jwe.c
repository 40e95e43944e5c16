#include "jose/jwe.h"

#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "jose/b64url.h"
#include "util/ec.h"

#define N_PARTS 5
/* EVP_*Update take an int length: feed big inputs in slices. */
#define GCM_SLICE (1 << 20)

void jwe_clear(tp_jwe *jwe)
{
	if (!jwe)
		return;
	free(jwe->protected_b64);
	json_decref(jwe->header);
	free(jwe->ciphertext);
	memset(jwe, 0, sizeof(*jwe));
}

/* What may follow the JWE: whitespace (files, shells), and NULs (a C
 * caller passing sizeof a string, terminator included). */
static bool is_trailer(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\0';
}

/* Splits text at '.' into exactly N_PARTS parts (pointers into text). */
static const char *split(const char *text, size_t len, const char **part, size_t *plen)
{
	size_t n = 0, start = 0;

	for (size_t i = 0; i < len; i++) {
		if (text[i] != '.')
			continue;
		if (n == N_PARTS - 1)
			return "more than five parts";
		part[n] = text + start;
		plen[n++] = i - start;
		start = i + 1;
	}
	if (n != N_PARTS - 1)
		return "fewer than five parts";
	part[n] = text + start;
	plen[n] = len - start;
	return NULL;
}

static const char *parse_header(const char *b64, size_t len, tp_jwe *jwe, tp_err *err)
{
	uint8_t *raw = NULL;
	size_t raw_len = 0;

	*err = TP_ERR_INPUT;
	if (len == 0)
		return "empty protected header";
	if (len > TP_JWE_MAX_HEADER_B64)
		return "protected header larger than 64 KiB";
	*err = b64url_decode(b64, len, &raw, &raw_len);
	if (*err != TP_OK)
		return *err == TP_ERR_INPUT ? "protected header is not base64url" : "out of memory";
	jwe->header = json_loadb((const char *)raw, raw_len, JSON_REJECT_DUPLICATES, NULL);
	free(raw);
	*err = TP_ERR_INPUT;
	if (!json_is_object(jwe->header))
		return "protected header is not a JSON object";
	/* Copied by length: the input is not NUL-terminated (C_DecryptUpdate
	 * collects it), so no string function may look past len. */
	jwe->protected_b64 = malloc(len + 1);
	if (!jwe->protected_b64) {
		*err = TP_ERR_NOMEM;
		return "out of memory";
	}
	memcpy(jwe->protected_b64, b64, len);
	jwe->protected_b64[len] = '\0';
	jwe->protected_len = len;
	*err = TP_OK;
	return NULL;
}

tp_err jwe_parse(const char *text, size_t len, tp_jwe *jwe, const char **why)
{
	const char *part[N_PARTS];
	size_t plen[N_PARTS];
	tp_err err = TP_ERR_INPUT;

	memset(jwe, 0, sizeof(*jwe));
	*why = "no input";
	if (!text)
		goto out;
	while (len && is_trailer(text[len - 1]))
		len--;
	*why = "larger than 16 MiB";
	if (len > TP_JWE_MAX_TEXT)
		goto out;
	*why = split(text, len, part, plen);
	if (*why)
		goto out;
	/* Cheap structural checks first, the header (JSON) last. */
	*why = "encrypted_key is not empty (ECDH-ES is direct key agreement)";
	if (plen[1] != 0)
		goto out;
	*why = "IV is not 12 bytes of base64url";
	if (b64url_decode_exact(part[2], plen[2], jwe->iv, TP_JWE_IV_LEN) != TP_OK)
		goto out;
	*why = "tag is not 16 bytes of base64url";
	if (b64url_decode_exact(part[4], plen[4], jwe->tag, TP_JWE_TAG_LEN) != TP_OK)
		goto out;
	err = b64url_decode(part[3], plen[3], &jwe->ciphertext, &jwe->ciphertext_len);
	*why = err == TP_ERR_NOMEM ? "out of memory" : "ciphertext is not base64url";
	if (err != TP_OK)
		goto out;
	*why = parse_header(part[0], plen[0], jwe, &err);
out:
	if (err != TP_OK)
		jwe_clear(jwe);
	else
		*why = NULL;
	return err;
}

static const char *member_str(const tp_jwe *jwe, const char *name)
{
	return json_string_value(json_object_get(jwe->header, name));
}

/* apu / apv: absent (empty), or a strict base64url string. */
static tp_err party_info(const tp_jwe *jwe, const char *name, uint8_t **out, size_t *len)
{
	const json_t *v = json_object_get(jwe->header, name);
	tp_err err;

	*out = NULL;
	*len = 0;
	if (!v)
		return TP_OK;
	if (!json_is_string(v))
		return TP_ERR_INPUT;
	err = b64url_decode(json_string_value(v), json_string_length(v), out, len);
	if (err == TP_OK && *len > TP_JWE_MAX_PARTY_INFO) {
		free(*out);
		*out = NULL;
		err = TP_ERR_INPUT;
	}
	return err;
}

tp_err jwe_check_ecdh_es(const tp_jwe *jwe, const char **why)
{
	const char *alg = member_str(jwe, "alg"), *enc = member_str(jwe, "enc");
	uint8_t *apu = NULL, *apv = NULL;
	size_t apu_len = 0, apv_len = 0;

	*why = NULL;
	if (!alg || strcmp(alg, "ECDH-ES") != 0)
		*why = "alg is not ECDH-ES";
	else if (!enc || strcmp(enc, "A256GCM") != 0)
		*why = "enc is not A256GCM";
	else if (json_object_get(jwe->header, "zip"))
		*why = "zip (compression) is not supported";
	else if (json_object_get(jwe->header, "crit"))
		*why = "crit names extensions this module does not implement";
	else if (!json_is_object(json_object_get(jwe->header, "epk")))
		*why = "no epk object";
	else if (party_info(jwe, "apu", &apu, &apu_len) != TP_OK)
		*why = "apu is not base64url of at most 1 KiB";
	else if (party_info(jwe, "apv", &apv, &apv_len) != TP_OK)
		*why = "apv is not base64url of at most 1 KiB";
	free(apu);
	free(apv);
	return *why ? TP_ERR_INPUT : TP_OK;
}

static void be32(uint8_t *out, uint32_t v)
{
	out[0] = (uint8_t)(v >> 24);
	out[1] = (uint8_t)(v >> 16);
	out[2] = (uint8_t)(v >> 8);
	out[3] = (uint8_t)v;
}

static int update_len_prefixed(EVP_MD_CTX *md, const void *data, size_t len)
{
	uint8_t n[4];

	be32(n, (uint32_t)len);
	return EVP_DigestUpdate(md, n, 4) && (len == 0 || EVP_DigestUpdate(md, data, len));
}

tp_err jwe_concat_kdf(const uint8_t *z, size_t z_len, const char *enc,
		      const uint8_t *apu, size_t apu_len,
		      const uint8_t *apv, size_t apv_len,
		      uint8_t cek[TP_JWE_CEK_LEN])
{
	static const uint8_t round1[4] = { 0, 0, 0, 1 };
	uint8_t supp_pub[4];
	EVP_MD *sha256 = NULL;
	EVP_MD_CTX *md = NULL;
	unsigned int out_len = 0;
	tp_err err = TP_ERR_GENERAL;

	/* One SHA-256 block is the whole 256-bit key: a single round. */
	be32(supp_pub, TP_JWE_CEK_LEN * 8);
	sha256 = EVP_MD_fetch(ossl_ctx(), "SHA256", NULL);
	md = EVP_MD_CTX_new();
	if (!sha256 || !md || !EVP_DigestInit_ex(md, sha256, NULL) ||
	    !EVP_DigestUpdate(md, round1, 4) || !EVP_DigestUpdate(md, z, z_len) ||
	    !update_len_prefixed(md, enc, strlen(enc)) ||
	    !update_len_prefixed(md, apu, apu_len) ||
	    !update_len_prefixed(md, apv, apv_len) ||
	    !EVP_DigestUpdate(md, supp_pub, 4) ||
	    !EVP_DigestFinal_ex(md, cek, &out_len) || out_len != TP_JWE_CEK_LEN)
		goto out;
	err = TP_OK;
out:
	EVP_MD_CTX_free(md);   /* cleanses its state */
	EVP_MD_free(sha256);
	return err;
}

tp_err jwe_derive_cek(const tp_jwe *jwe, const uint8_t *z, size_t z_len,
		      uint8_t cek[TP_JWE_CEK_LEN])
{
	uint8_t *apu = NULL, *apv = NULL;
	size_t apu_len = 0, apv_len = 0;
	tp_err err;

	err = party_info(jwe, "apu", &apu, &apu_len);
	if (err == TP_OK)
		err = party_info(jwe, "apv", &apv, &apv_len);
	if (err == TP_OK)
		err = jwe_concat_kdf(z, z_len, member_str(jwe, "enc"), apu, apu_len,
				     apv, apv_len, cek);
	free(apu);
	free(apv);
	return err;
}

/* out NULL: in is AAD.  GCM is a stream mode: every slice comes out whole. */
static int gcm_update(EVP_CIPHER_CTX *ctx, uint8_t *out, const uint8_t *in, size_t len)
{
	for (size_t done = 0; done < len;) {
		size_t slice = len - done < GCM_SLICE ? len - done : GCM_SLICE;
		int n = 0;

		if (!EVP_CipherUpdate(ctx, out ? out + done : NULL, &n, in + done, (int)slice) ||
		    (size_t)n != slice)
			return 0;
		done += slice;
	}
	return 1;
}

static EVP_CIPHER_CTX *gcm_begin(const uint8_t *cek, const uint8_t *iv, int enc,
				 const char *aad, size_t aad_len)
{
	EVP_CIPHER *aes = EVP_CIPHER_fetch(ossl_ctx(), "AES-256-GCM", NULL);
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();

	/* GCM's default IV length is 96 bits, the JWE's. */
	if (!aes || !ctx || !EVP_CipherInit_ex2(ctx, aes, cek, iv, enc, NULL) ||
	    !gcm_update(ctx, NULL, (const uint8_t *)aad, aad_len)) {
		EVP_CIPHER_CTX_free(ctx);
		ctx = NULL;
	}
	EVP_CIPHER_free(aes);
	return ctx;
}

tp_err jwe_gcm_seal(const uint8_t cek[TP_JWE_CEK_LEN], const uint8_t iv[TP_JWE_IV_LEN],
		    const char *aad, size_t aad_len, const uint8_t *pt, size_t len,
		    uint8_t *ct, uint8_t tag[TP_JWE_TAG_LEN])
{
	EVP_CIPHER_CTX *ctx = gcm_begin(cek, iv, 1, aad, aad_len);
	uint8_t last[16];
	int n = 0;
	tp_err err = TP_ERR_GENERAL;

	if (!ctx || !gcm_update(ctx, ct, pt, len) || !EVP_EncryptFinal_ex(ctx, last, &n) ||
	    n != 0 || !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TP_JWE_TAG_LEN, tag))
		goto out;
	err = TP_OK;
out:
	EVP_CIPHER_CTX_free(ctx);
	return err;
}

tp_err jwe_gcm_open(const uint8_t cek[TP_JWE_CEK_LEN], const uint8_t iv[TP_JWE_IV_LEN],
		    const char *aad, size_t aad_len, const uint8_t *ct, size_t len,
		    const uint8_t tag[TP_JWE_TAG_LEN], uint8_t *pt)
{
	EVP_CIPHER_CTX *ctx = gcm_begin(cek, iv, 0, aad, aad_len);
	uint8_t last[16];
	int n = 0;
	tp_err err = TP_ERR_GENERAL;

	if (!ctx || !gcm_update(ctx, pt, ct, len) ||
	    !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TP_JWE_TAG_LEN, (void *)tag))
		goto out;
	/* The tag decides: until it verified, pt is not plaintext to anyone. */
	err = EVP_DecryptFinal_ex(ctx, last, &n) == 1 && n == 0 ? TP_OK : TP_ERR_INPUT;
out:
	if (err != TP_OK && len)
		OPENSSL_cleanse(pt, len);
	EVP_CIPHER_CTX_free(ctx);
	return err;
}

tp_err jwe_open(const tp_jwe *jwe, const uint8_t cek[TP_JWE_CEK_LEN], uint8_t *pt)
{
	return jwe_gcm_open(cek, jwe->iv, jwe->protected_b64, jwe->protected_len,
			    jwe->ciphertext, jwe->ciphertext_len, jwe->tag, pt);
}

/* b64u(header) "." "" "." b64u(iv) "." b64u(ct) "." b64u(tag) */
static char *compact(const char *hdr_b64, size_t hdr_len, const uint8_t *iv,
		     const uint8_t *ct, size_t ct_len, const uint8_t *tag, size_t *out_len)
{
	size_t total = hdr_len + 2 + b64url_encoded_len(TP_JWE_IV_LEN) + 1 +
		       b64url_encoded_len(ct_len) + 1 + b64url_encoded_len(TP_JWE_TAG_LEN);
	char *out = malloc(total + 1), *p = out;

	if (!out)
		return NULL;
	memcpy(p, hdr_b64, hdr_len);
	p += hdr_len;
	*p++ = '.';
	*p++ = '.';
	b64url_encode(iv, TP_JWE_IV_LEN, p);
	p += strlen(p);
	*p++ = '.';
	b64url_encode(ct, ct_len, p);
	p += strlen(p);
	*p++ = '.';
	b64url_encode(tag, TP_JWE_TAG_LEN, p);
	*out_len = total;
	return out;
}

tp_err jwe_seal(const char *header_json, size_t header_len,
		const uint8_t cek[TP_JWE_CEK_LEN], const uint8_t *pt, size_t len,
		char **out, size_t *out_len)
{
	uint8_t iv[TP_JWE_IV_LEN], tag[TP_JWE_TAG_LEN];
	uint8_t *ct = NULL;
	char *hdr = NULL;
	tp_err err = TP_ERR_NOMEM;

	*out = NULL;
	*out_len = 0;
	hdr = b64url_encode_alloc((const uint8_t *)header_json, header_len);
	ct = malloc(len + 1);
	if (!hdr || !ct)
		goto out;
	err = TP_ERR_GENERAL;
	if (RAND_bytes_ex(ossl_ctx(), iv, sizeof(iv), 0) != 1)
		goto out;
	err = jwe_gcm_seal(cek, iv, hdr, strlen(hdr), pt, len, ct, tag);
	if (err != TP_OK)
		goto out;
	*out = compact(hdr, strlen(hdr), iv, ct, len, tag, out_len);
	err = *out ? TP_OK : TP_ERR_NOMEM;
out:
	free(hdr);
	free(ct);
	return err;
}
