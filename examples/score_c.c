/* Scores requests with the C API only (dtrn.h): load a model, read JSON request lines,
 * score each one, print its top candidates with every task's probability.
 *
 *   dtrn-c-example MODEL.dtrn REQUESTS.jsonl [TOP]
 *
 * C99; exit status 0 on success, 2 on bad input (model, request), 1 otherwise. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dtrn.h"

/* Reads one line of any length into *buf (grown with realloc); returns its length, -1 at end. */
static long read_line(FILE* f, char** buf, size_t* cap) {
  size_t len = 0;
  if (*cap == 0) {
    *cap = 4096;
    *buf = (char*)malloc(*cap);
    if (!*buf) return -2;
  }
  for (;;) {
    if (!fgets(*buf + len, (int)(*cap - len), f)) return len ? (long)len : -1;
    len += strlen(*buf + len);
    if (len > 0 && (*buf)[len - 1] == '\n') return (long)len;
    if (len + 1 == *cap) { /* full: grow and keep reading the same line */
      char* bigger = (char*)realloc(*buf, *cap * 2);
      if (!bigger) return -2;
      *buf = bigger;
      *cap *= 2;
    }
  }
}

static int is_blank(const char* s) {
  for (; *s; ++s)
    if (*s != ' ' && *s != '\t' && *s != '\r' && *s != '\n') return 0;
  return 1;
}

int main(int argc, char** argv) {
  dtrn_error_t err;
  dtrn_model_t* model = NULL;
  dtrn_session_t* session = NULL;
  dtrn_scores_t* scores = NULL;
  int32_t* top = NULL;
  char* line = NULL;
  size_t cap = 0, top_k = 5, line_no = 0, scored = 0;
  long len;
  int status = 0;
  FILE* in = NULL;

  if (argc < 3 || argc > 4) {
    fprintf(stderr, "usage: %s MODEL.dtrn REQUESTS.jsonl [TOP]\n(%s)\n", argv[0], dtrn_version());
    return 2;
  }
  if (argc == 4) top_k = (size_t)strtoul(argv[3], NULL, 10);
  if (top_k == 0) top_k = 1;

  if (dtrn_model_load(argv[1], &model, &err) != DTRN_OK) {
    fprintf(stderr, "cannot load %s: %s (%s)\n", argv[1], err.message, dtrn_status_name(err.code));
    return 2;
  }
  printf("model %s: %zu tasks (", dtrn_model_name(model), dtrn_model_num_tasks(model));
  for (size_t k = 0; k < dtrn_model_num_tasks(model); ++k)
    printf("%s%s", k ? ", " : "", dtrn_model_task_name(model, k));
  printf("), %zu fields\n", dtrn_model_num_fields(model));

  if (dtrn_session_create(model, 1, &session, &err) != DTRN_OK || dtrn_scores_create(&scores, &err) != DTRN_OK) {
    fprintf(stderr, "%s\n", err.message);
    status = 1;
    goto done;
  }
  top = (int32_t*)malloc(top_k * sizeof(int32_t));
  in = fopen(argv[2], "r");
  if (!top || !in) {
    fprintf(stderr, "cannot read %s\n", argv[2]);
    status = 2;
    goto done;
  }

  while ((len = read_line(in, &line, &cap)) >= 0) {
    dtrn_request_t* request = NULL;
    size_t count = 0, num_tasks;
    const float* p;
    ++line_no;
    if (is_blank(line)) continue;
    if (dtrn_request_from_json(model, line, (size_t)len, &request, &err) != DTRN_OK ||
        dtrn_session_score(session, request, scores, &err) != DTRN_OK ||
        dtrn_scores_top_k(scores, NULL, 0, top_k, top, top_k, &count, &err) != DTRN_OK) {
      fprintf(stderr, "%s line %zu: %s\n", argv[2], line_no, err.message);
      dtrn_request_free(request);
      status = 2;
      break;
    }
    num_tasks = dtrn_scores_num_tasks(scores);
    p = dtrn_scores_probabilities(scores);
    printf("line %zu: %zu candidates, top %zu:\n", line_no, dtrn_scores_num_candidates(scores), count);
    for (size_t r = 0; r < count; ++r) {
      printf("  #%zu candidate %d:", r + 1, (int)top[r]);
      for (size_t k = 0; k < num_tasks; ++k)
        printf(" %s=%.4f", dtrn_model_task_name(model, k), p[(size_t)top[r] * num_tasks + k]);
      printf("\n");
    }
    dtrn_request_free(request);
    ++scored;
  }
  if (len == -2) {
    fprintf(stderr, "out of memory\n");
    status = 1;
  }
  if (status == 0) printf("scored %zu requests\n", scored);

done:
  if (in) fclose(in);
  free(line);
  free(top);
  dtrn_scores_free(scores);
  dtrn_session_free(session);
  dtrn_model_free(model);
  return status;
}
