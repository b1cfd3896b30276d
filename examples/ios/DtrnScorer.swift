// Swift over the dtrn-edge C API (docs/integration.md, "iOS"). A sketch: not compiled in
// this repository's CI (no Xcode there); it uses only functions of dtrn.h.
import Dtrn
import Foundation

struct DtrnError: Error, CustomStringConvertible {
  let code: Int32
  let message: String
  var description: String { "\(String(cString: dtrn_status_name(code))): \(message)" }

  init(_ err: inout dtrn_error_t) {
    code = err.code
    message = withUnsafeBytes(of: &err.message) { raw in
      String(cString: raw.bindMemory(to: CChar.self).baseAddress!)
    }
  }
}

/// One model and one session (one per thread); scores JSON request lines.
final class DtrnScorer {
  private var model: OpaquePointer?
  private var session: OpaquePointer?
  private var scores: OpaquePointer?
  let tasks: [String]

  init(modelPath: String, threads: Int32 = 1) throws {
    var err = dtrn_error_t()
    guard dtrn_model_load(modelPath, &model, &err) == Int32(DTRN_OK.rawValue) else { throw DtrnError(&err) }
    tasks = (0..<dtrn_model_num_tasks(model)).map { String(cString: dtrn_model_task_name(model, $0)) }
    guard dtrn_session_create(model, threads, &session, &err) == Int32(DTRN_OK.rawValue),
          dtrn_scores_create(&scores, &err) == Int32(DTRN_OK.rawValue) else { throw DtrnError(&err) }
  }

  deinit {
    dtrn_scores_free(scores)
    dtrn_session_free(session)
    dtrn_model_free(model)
  }

  /// Probabilities N x K (row-major) and the candidates' order by the request's fused score.
  func score(requestJSON: String) throws -> (probabilities: [Float], order: [Int32]) {
    var err = dtrn_error_t()
    var request: OpaquePointer?
    let utf8 = Array(requestJSON.utf8)
    let rc = utf8.withUnsafeBufferPointer { buf in
      buf.baseAddress!.withMemoryRebound(to: CChar.self, capacity: buf.count) {
        dtrn_request_from_json(model, $0, buf.count, &request, &err)
      }
    }
    guard rc == Int32(DTRN_OK.rawValue) else { throw DtrnError(&err) }
    defer { dtrn_request_free(request) }
    guard dtrn_session_score(session, request, scores, &err) == Int32(DTRN_OK.rawValue) else { throw DtrnError(&err) }
    let n = dtrn_scores_num_candidates(scores), k = dtrn_scores_num_tasks(scores)
    let probabilities = Array(UnsafeBufferPointer(start: dtrn_scores_probabilities(scores), count: n * k))
    var order = [Int32](repeating: 0, count: n)
    guard dtrn_scores_rank(scores, nil, 0, &order, n, &err) == Int32(DTRN_OK.rawValue) else { throw DtrnError(&err) }
    return (probabilities, order)
  }
}
