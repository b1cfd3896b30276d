/* dtrn-edge C API: score DTRN multi-task recommendation models from C, Android JNI or Swift.
 *
 *   dtrn_error_t err;
 *   dtrn_model_t* model;  dtrn_session_t* session;  dtrn_request_t* req;  dtrn_scores_t* scores;
 *   if (dtrn_model_load("m.dtrn", &model, &err) != DTRN_OK) { puts(err.message); ... }
 *   dtrn_session_create(model, 1, &session, &err);          one session per thread
 *   dtrn_request_from_json(model, line, strlen(line), &req, &err);   or dtrn_request_create + setters
 *   dtrn_scores_create(&scores, &err);                       reusable across requests
 *   dtrn_session_score(session, req, scores, &err);
 *   const float* p = dtrn_scores_probabilities(scores);       N x K, row-major
 *   dtrn_scores_top_k(scores, NULL, 0, 10, top, &count, &err);
 *   ... dtrn_scores_free, dtrn_request_free, dtrn_session_free, dtrn_model_free.
 *
 * Errors: every fallible function returns a dtrn_status code (DTRN_OK = 0) and, when `err` is
 * not NULL, fills it with the code and a NUL-terminated UTF-8 message naming what is wrong
 * and where. There is no global or thread-local error state.
 *
 * Threads: a model is immutable and may be shared by any number of threads; a session, a
 * request being modified, and a scores object being written belong to one thread at a time.
 * Handles are reference-counted internally: a model may be freed while sessions and requests
 * made from it are alive.
 *
 * Memory: handles are created by the library and freed with their dtrn_*_free function
 * (NULL is accepted). Pointers returned by getters stay valid until the handle is modified
 * or freed.
 */
#ifndef DTRN_C_API_DTRN_H_
#define DTRN_C_API_DTRN_H_

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#define DTRN_API __declspec(dllexport)
#elif defined(__GNUC__)
#define DTRN_API __attribute__((visibility("default")))
#else
#define DTRN_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes; the values match dtrn::StatusCode. */
typedef enum dtrn_status {
  DTRN_OK = 0,
  DTRN_INVALID_ARGUMENT = 1, /* bad request, bad option, wrong field name or type */
  DTRN_NOT_FOUND = 2,        /* missing file, unknown field */
  DTRN_DATA_LOSS = 3,        /* truncated or corrupted model file, checksum mismatch */
  DTRN_UNIMPLEMENTED = 4,    /* valid but unsupported (e.g. unknown format version) */
  DTRN_INTERNAL = 5,         /* a library failed, or out of memory */
  DTRN_IO = 6                /* read or write failed */
} dtrn_status;

/* Field groups and kinds, as in the model config. */
typedef enum dtrn_field_group { DTRN_GROUP_USER = 0, DTRN_GROUP_CONTEXT = 1, DTRN_GROUP_ITEM = 2 } dtrn_field_group;
typedef enum dtrn_field_kind { DTRN_FIELD_SPARSE = 0, DTRN_FIELD_DENSE = 1 } dtrn_field_kind;

#define DTRN_ERROR_MESSAGE_SIZE 512

/* Caller-owned error report. A longer message is cut at a UTF-8 character boundary. */
typedef struct dtrn_error {
  int code; /* a dtrn_status */
  char message[DTRN_ERROR_MESSAGE_SIZE];
} dtrn_error_t;

typedef struct dtrn_model dtrn_model_t;
typedef struct dtrn_session dtrn_session_t;
typedef struct dtrn_request dtrn_request_t;
typedef struct dtrn_scores dtrn_scores_t;

/* "dtrn-edge <version>"; static storage. */
DTRN_API const char* dtrn_version(void);
/* "OK", "INVALID_ARGUMENT", ...; static storage. */
DTRN_API const char* dtrn_status_name(int code);

/* ---- model ---------------------------------------------------------------------------------- */

/* Memory-maps and verifies a .dtrn file (identifier, version, structure, bounds, checksum). */
DTRN_API int dtrn_model_load(const char* path, dtrn_model_t** out, dtrn_error_t* err);
/* Same checks on bytes in memory; the bytes are copied, the caller keeps ownership of `data`. */
DTRN_API int dtrn_model_load_buffer(const void* data, size_t size, dtrn_model_t** out, dtrn_error_t* err);
DTRN_API void dtrn_model_free(dtrn_model_t* model);

/* Model description; strings have the model's lifetime. Out-of-range indices give NULL / -1. */
DTRN_API const char* dtrn_model_name(const dtrn_model_t* model);
DTRN_API size_t dtrn_model_num_tasks(const dtrn_model_t* model);
DTRN_API const char* dtrn_model_task_name(const dtrn_model_t* model, size_t task);
DTRN_API size_t dtrn_model_num_behaviors(const dtrn_model_t* model);
DTRN_API const char* dtrn_model_behavior_name(const dtrn_model_t* model, size_t behavior);
DTRN_API size_t dtrn_model_num_fields(const dtrn_model_t* model); /* config order */
DTRN_API const char* dtrn_model_field_name(const dtrn_model_t* model, size_t field);
DTRN_API int dtrn_model_field_group(const dtrn_model_t* model, size_t field); /* a dtrn_field_group */
DTRN_API int dtrn_model_field_kind(const dtrn_model_t* model, size_t field);  /* a dtrn_field_kind */
DTRN_API int dtrn_model_field_width(const dtrn_model_t* model, size_t field); /* dense width, 0 for sparse */
DTRN_API int dtrn_model_seq_len(const dtrn_model_t* model);                   /* L */
/* The item fields every behaviour event also carries (the config's seq_fields), in the model's
 * order: the order of side_ids in dtrn_request_set_behavior_fields. 0 / NULL for most models. */
DTRN_API size_t dtrn_model_num_seq_fields(const dtrn_model_t* model);
DTRN_API const char* dtrn_model_seq_field_name(const dtrn_model_t* model, size_t index);

/* ---- session -------------------------------------------------------------------------------- */

/* Per-thread scoring state. threads: intra-request threads (1 = the caller's thread only). */
DTRN_API int dtrn_session_create(const dtrn_model_t* model, int threads, dtrn_session_t** out, dtrn_error_t* err);
DTRN_API void dtrn_session_free(dtrn_session_t* session);

/* ---- request -------------------------------------------------------------------------------- */

/* One request line of docs/request-format.md (the JSON need not be NUL-terminated). */
DTRN_API int dtrn_request_from_json(const dtrn_model_t* model, const char* json, size_t length, dtrn_request_t** out,
                                    dtrn_error_t* err);

/* An empty request with num_candidates (>= 1) candidates, to fill field by field. Every field,
 * every candidate's item fields and every behaviour type must be set before scoring; the
 * weights default to all 1. Setting a value again replaces it. */
DTRN_API int dtrn_request_create(const dtrn_model_t* model, size_t num_candidates, dtrn_request_t** out,
                                 dtrn_error_t* err);
DTRN_API void dtrn_request_free(dtrn_request_t* request);

DTRN_API int dtrn_request_set_id(dtrn_request_t* request, const char* id, dtrn_error_t* err);
/* Changes N; kept candidates keep their values, new ones start unset. */
DTRN_API int dtrn_request_set_num_candidates(dtrn_request_t* request, size_t num_candidates, dtrn_error_t* err);
DTRN_API size_t dtrn_request_num_candidates(const dtrn_request_t* request);

/* A user or context field, by name. */
DTRN_API int dtrn_request_set_sparse(dtrn_request_t* request, const char* field, int64_t id, dtrn_error_t* err);
DTRN_API int dtrn_request_set_dense(dtrn_request_t* request, const char* field, const float* values, size_t count,
                                    dtrn_error_t* err);
/* An item field of candidate i (0-based), by name. */
DTRN_API int dtrn_request_set_candidate_sparse(dtrn_request_t* request, size_t candidate, const char* field, int64_t id,
                                               dtrn_error_t* err);
DTRN_API int dtrn_request_set_candidate_dense(dtrn_request_t* request, size_t candidate, const char* field,
                                              const float* values, size_t count, dtrn_error_t* err);
/* A behaviour sequence by behaviour-type name, item ids oldest first (count 0: none). For a
 * model without seq_fields only; with them, use dtrn_request_set_behavior_fields. */
DTRN_API int dtrn_request_set_behavior(dtrn_request_t* request, const char* behavior, const int64_t* ids, size_t count,
                                       dtrn_error_t* err);
/* A behaviour sequence of `count` events, oldest first, for any model: item_ids[count] and, for
 * each of the model's seq_fields (dtrn_model_seq_field_name), side_ids[f][count], the same
 * events' ids of that field (side_ids may be NULL for a model without seq_fields, or when
 * count is 0). Ids are checked against their tables when the request is scored. */
DTRN_API int dtrn_request_set_behavior_fields(dtrn_request_t* request, const char* behavior, const int64_t* item_ids,
                                              const int64_t* const* side_ids, size_t count, dtrn_error_t* err);
/* K finite weights in task order for the fused ranking; weights NULL / count 0: back to all 1. */
DTRN_API int dtrn_request_set_weights(dtrn_request_t* request, const float* weights, size_t count, dtrn_error_t* err);

/* ---- scoring -------------------------------------------------------------------------------- */

DTRN_API int dtrn_scores_create(dtrn_scores_t** out, dtrn_error_t* err);
DTRN_API void dtrn_scores_free(dtrn_scores_t* scores);

/* Validates the request against the model and scores every candidate into `scores`
 * (which also remembers the request's weights for ranking). */
DTRN_API int dtrn_session_score(dtrn_session_t* session, const dtrn_request_t* request, dtrn_scores_t* scores,
                                dtrn_error_t* err);

DTRN_API size_t dtrn_scores_num_candidates(const dtrn_scores_t* scores); /* N */
DTRN_API size_t dtrn_scores_num_tasks(const dtrn_scores_t* scores);      /* K */
/* N x K row-major: [i * K + k] is task k of candidate i. NULL before the first score. */
DTRN_API const float* dtrn_scores_probabilities(const dtrn_scores_t* scores);
DTRN_API const float* dtrn_scores_logits(const dtrn_scores_t* scores);

/* Candidate indices by the fused score sum_k w_k * p_k, best first, ties to the lower index.
 * weights NULL (count 0): the scored request's weights. rank: all N into order[capacity >= N];
 * top_k: the best min(k, N) into order[capacity >= min(k, N)], their number in *count. */
DTRN_API int dtrn_scores_rank(const dtrn_scores_t* scores, const float* weights, size_t num_weights, int32_t* order,
                              size_t capacity, dtrn_error_t* err);
DTRN_API int dtrn_scores_top_k(const dtrn_scores_t* scores, const float* weights, size_t num_weights, size_t k,
                               int32_t* order, size_t capacity, size_t* count, dtrn_error_t* err);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* DTRN_C_API_DTRN_H_ */
