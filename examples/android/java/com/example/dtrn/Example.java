package com.example.dtrn;

import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.List;

/** Host check of the JNI bridge (tests/install_test.sh): java Example MODEL.dtrn REQUESTS.jsonl */
public final class Example {
  public static void main(String[] args) throws Exception {
    List<String> lines = Files.readAllLines(Paths.get(args[1]));
    try (Dtrn.Model model = new Dtrn.Model(args[0]); Dtrn.Session session = model.session(1)) {
      int k = model.tasks().length;
      int scored = 0;
      for (String line : lines) {
        if (line.isBlank()) continue;
        float[] p = session.score(line);
        int[] top = session.topK(3);
        System.out.printf("candidates %d, best %d (%s=%.4f)%n", p.length / k, top[0], model.tasks()[0], p[top[0] * k]);
        ++scored;
      }
      System.out.println("scored " + scored + " requests with " + Dtrn.version());
      try {
        session.score("{\"id\":\"bad\"}");
        throw new AssertionError("a bad request was accepted");
      } catch (DtrnException e) {
        System.out.println("error: " + e.getMessage());
      }
    }
  }
}
