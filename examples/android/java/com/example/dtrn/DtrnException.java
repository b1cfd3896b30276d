package com.example.dtrn;

/** An error from dtrn-edge: "CODE: message", the runtime's own message. */
public class DtrnException extends RuntimeException {
  public DtrnException(String message) {
    super(message);
  }
}
