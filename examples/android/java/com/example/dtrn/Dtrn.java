package com.example.dtrn;

import java.io.Closeable;

/**
 * dtrn-edge from Java/Kotlin through JNI (dtrn_jni.c). Load a Model once, make one Session
 * per thread, score JSON request lines.
 *
 * <pre>
 *   try (Dtrn.Model model = new Dtrn.Model(path); Dtrn.Session session = model.session(1)) {
 *     float[] p = session.score(requestJson);   // N x K, row-major
 *     int[] top = session.topK(10);             // by the request's fused score
 *   }
 * </pre>
 */
public final class Dtrn {
  static {
    System.loadLibrary("dtrn_jni");
  }

  private Dtrn() {}

  public static native String version();

  static native long loadModel(String path);
  static native void freeModel(long model);
  static native String[] taskNames(long model);
  static native long createSession(long model, int threads);
  static native void freeSession(long session);
  static native float[] score(long session, String requestJson);
  static native int[] topK(long session, int k);

  /** An immutable model, shareable between threads. */
  public static final class Model implements Closeable {
    private long handle;

    public Model(String path) {
      handle = loadModel(path);
    }

    public String[] tasks() {
      return taskNames(handle);
    }

    public Session session(int threads) {
      return new Session(createSession(handle, threads));
    }

    @Override
    public void close() {
      freeModel(handle);  // sessions made from it stay valid (the C API counts references)
      handle = 0;
    }
  }

  /** Scoring state for one thread. */
  public static final class Session implements Closeable {
    private long handle;

    Session(long handle) {
      this.handle = handle;
    }

    public float[] score(String requestJson) {
      return Dtrn.score(handle, requestJson);
    }

    public int[] topK(int k) {
      return Dtrn.topK(handle, k);
    }

    @Override
    public void close() {
      freeSession(handle);
      handle = 0;
    }
  }
}
