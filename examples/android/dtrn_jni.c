/* JNI bridge from an Android app to the dtrn-edge C API (dtrn.h): see docs/integration.md.
 *
 * Java side: java/com/example/dtrn/Dtrn.java (class com.example.dtrn.Dtrn). Handles are
 * passed to Java as `long`s; every error becomes a com.example.dtrn.DtrnException carrying
 * the runtime's message. One Dtrn.Session per thread (the C API's rule); a model may be
 * shared. Requests are JSON lines (docs/request-format.md); an app that already holds the
 * values can fill a request field by field with dtrn_request_set_* instead.
 *
 * C99, compiles with the NDK's clang (arm64-v8a) and, for a host check, with any C
 * compiler and a desktop JDK's jni.h (tests/install_test.sh builds and runs it). */
#include <jni.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dtrn.h"

/* A session with its scores buffer (reused across requests) and the model it scores. */
typedef struct {
  const dtrn_model_t* model;
  dtrn_session_t* session;
  dtrn_scores_t* scores;
} jni_session;

static void throw_dtrn(JNIEnv* env, const char* message) {
  jclass cls = (*env)->FindClass(env, "com/example/dtrn/DtrnException");
  if (!cls) {
    (*env)->ExceptionClear(env);
    cls = (*env)->FindClass(env, "java/lang/RuntimeException");
  }
  if (cls) (*env)->ThrowNew(env, cls, message);
}

static void throw_err(JNIEnv* env, const dtrn_error_t* err) {
  char buf[DTRN_ERROR_MESSAGE_SIZE + 32];
  strcpy(buf, dtrn_status_name(err->code));
  strcat(buf, ": ");
  strcat(buf, err->message);
  throw_dtrn(env, buf);
}

JNIEXPORT jstring JNICALL Java_com_example_dtrn_Dtrn_version(JNIEnv* env, jclass cls) {
  (void)cls;
  return (*env)->NewStringUTF(env, dtrn_version());
}

JNIEXPORT jlong JNICALL Java_com_example_dtrn_Dtrn_loadModel(JNIEnv* env, jclass cls, jstring path) {
  dtrn_error_t err;
  dtrn_model_t* model = NULL;
  const char* p;
  int rc;
  (void)cls;
  if (!path) {
    throw_dtrn(env, "INVALID_ARGUMENT: path is null");
    return 0;
  }
  p = (*env)->GetStringUTFChars(env, path, NULL);
  if (!p) return 0; /* OutOfMemoryError pending */
  rc = dtrn_model_load(p, &model, &err);
  (*env)->ReleaseStringUTFChars(env, path, p);
  if (rc != DTRN_OK) {
    throw_err(env, &err);
    return 0;
  }
  return (jlong)(intptr_t)model;
}

JNIEXPORT void JNICALL Java_com_example_dtrn_Dtrn_freeModel(JNIEnv* env, jclass cls, jlong model) {
  (void)env;
  (void)cls;
  dtrn_model_free((dtrn_model_t*)(intptr_t)model);
}

JNIEXPORT jobjectArray JNICALL Java_com_example_dtrn_Dtrn_taskNames(JNIEnv* env, jclass cls, jlong handle) {
  const dtrn_model_t* model = (const dtrn_model_t*)(intptr_t)handle;
  size_t k, num_tasks = dtrn_model_num_tasks(model);
  jclass string_cls = (*env)->FindClass(env, "java/lang/String");
  jobjectArray names;
  (void)cls;
  if (!string_cls) return NULL;
  names = (*env)->NewObjectArray(env, (jsize)num_tasks, string_cls, NULL);
  if (!names) return NULL;
  for (k = 0; k < num_tasks; ++k) {
    jstring s = (*env)->NewStringUTF(env, dtrn_model_task_name(model, k));
    if (!s) return NULL;
    (*env)->SetObjectArrayElement(env, names, (jsize)k, s);
    (*env)->DeleteLocalRef(env, s);
  }
  return names;
}

JNIEXPORT jlong JNICALL Java_com_example_dtrn_Dtrn_createSession(JNIEnv* env, jclass cls, jlong model, jint threads) {
  dtrn_error_t err;
  jni_session* s = (jni_session*)calloc(1, sizeof(jni_session));
  (void)cls;
  if (!s) {
    throw_dtrn(env, "INTERNAL: out of memory");
    return 0;
  }
  s->model = (const dtrn_model_t*)(intptr_t)model;
  if (dtrn_session_create(s->model, (int)threads, &s->session, &err) != DTRN_OK ||
      dtrn_scores_create(&s->scores, &err) != DTRN_OK) {
    dtrn_session_free(s->session);
    free(s);
    throw_err(env, &err);
    return 0;
  }
  return (jlong)(intptr_t)s;
}

JNIEXPORT void JNICALL Java_com_example_dtrn_Dtrn_freeSession(JNIEnv* env, jclass cls, jlong handle) {
  jni_session* s = (jni_session*)(intptr_t)handle;
  (void)env;
  (void)cls;
  if (!s) return;
  dtrn_scores_free(s->scores);
  dtrn_session_free(s->session);
  free(s);
}

/* Scores one JSON request line: returns the N x K probabilities, row-major. */
JNIEXPORT jfloatArray JNICALL Java_com_example_dtrn_Dtrn_score(JNIEnv* env, jclass cls, jlong handle,
                                                               jstring request_json) {
  jni_session* s = (jni_session*)(intptr_t)handle;
  dtrn_error_t err;
  dtrn_request_t* request = NULL;
  const char* json;
  jsize length;
  int rc;
  size_t n;
  jfloatArray out;
  (void)cls;
  if (!s || !request_json) {
    throw_dtrn(env, "INVALID_ARGUMENT: null session or request");
    return NULL;
  }
  /* Modified UTF-8 equals UTF-8 for JSON text without NUL and outside the BMP escapes. */
  json = (*env)->GetStringUTFChars(env, request_json, NULL);
  if (!json) return NULL;
  length = (*env)->GetStringUTFLength(env, request_json);
  rc = dtrn_request_from_json(s->model, json, (size_t)length, &request, &err);
  (*env)->ReleaseStringUTFChars(env, request_json, json);
  if (rc == DTRN_OK) rc = dtrn_session_score(s->session, request, s->scores, &err);
  dtrn_request_free(request);
  if (rc != DTRN_OK) {
    throw_err(env, &err);
    return NULL;
  }
  n = dtrn_scores_num_candidates(s->scores) * dtrn_scores_num_tasks(s->scores);
  out = (*env)->NewFloatArray(env, (jsize)n);
  if (out) (*env)->SetFloatArrayRegion(env, out, 0, (jsize)n, dtrn_scores_probabilities(s->scores));
  return out;
}

/* The best k candidates of the last scored request by its fused score (its weights). */
JNIEXPORT jintArray JNICALL Java_com_example_dtrn_Dtrn_topK(JNIEnv* env, jclass cls, jlong handle, jint k) {
  jni_session* s = (jni_session*)(intptr_t)handle;
  dtrn_error_t err;
  size_t count = 0;
  int32_t* order;
  jintArray out;
  (void)cls;
  if (!s || k <= 0) {
    throw_dtrn(env, "INVALID_ARGUMENT: null session or k <= 0");
    return NULL;
  }
  order = (int32_t*)malloc((size_t)k * sizeof(int32_t));
  if (!order) {
    throw_dtrn(env, "INTERNAL: out of memory");
    return NULL;
  }
  if (dtrn_scores_top_k(s->scores, NULL, 0, (size_t)k, order, (size_t)k, &count, &err) != DTRN_OK) {
    free(order);
    throw_err(env, &err);
    return NULL;
  }
  out = (*env)->NewIntArray(env, (jsize)count);
  if (out) (*env)->SetIntArrayRegion(env, out, 0, (jsize)count, (const jint*)order);
  free(order);
  return out;
}
