"""The export action's log message codes and their en/ko templates.

Failure codes (``EXPORT_FAILED_*``) are what :func:`classify_export_error` returns; progress and
status codes are what the export action logs as it runs. Every member has an English and a Korean
template with the same placeholders, registered in the ``register_log_messages`` block below.
Adding a backend code is the three-step change of ``docs/failure-classification.md``: a member
here (with its level) and its templates, one line in the v2 catalog, one regression test.
"""

from __future__ import annotations

from synapse_sdk.plugins.log_messages import (
    LogLevel,
    LogMessageCode,
    register_log_messages,
    register_terms,
)

__all__ = ["ExportLogMessageCode"]


class ExportLogMessageCode(LogMessageCode):
    """Codes the export action logs; each carries the level the UI renders it at."""

    # --- v2 catalog (backend error.code) ---------------------------------------------------
    EXPORT_FAILED_BAD_REQUEST = ("EXPORT_FAILED_BAD_REQUEST", LogLevel.ERROR)
    EXPORT_FAILED_BATCH_PARTIAL = ("EXPORT_FAILED_BATCH_PARTIAL", LogLevel.WARNING)
    EXPORT_FAILED_RATE_LIMITED = ("EXPORT_FAILED_RATE_LIMITED", LogLevel.ERROR)
    # --- our transport's codes (BackendError.error_code) ---------------------------------
    EXPORT_FAILED_REDIRECT_REFUSED = ("EXPORT_FAILED_REDIRECT_REFUSED", LogLevel.ERROR)
    EXPORT_FAILED_RESPONSE_TOO_LARGE = ("EXPORT_FAILED_RESPONSE_TOO_LARGE", LogLevel.ERROR)
    EXPORT_FAILED_MALFORMED_RESPONSE = ("EXPORT_FAILED_MALFORMED_RESPONSE", LogLevel.ERROR)
    # --- per-item: ids a 200 bulk answer left out (the v2 API drops unknown/forbidden ids) --
    EXPORT_FAILED_NOT_SERVED = ("EXPORT_FAILED_NOT_SERVED", LogLevel.ERROR)
    # --- v1 patterns -----------------------------------------------------------------------
    EXPORT_FAILED_NETWORK = ("EXPORT_FAILED_NETWORK", LogLevel.ERROR)
    EXPORT_FAILED_PERMISSION = ("EXPORT_FAILED_PERMISSION", LogLevel.ERROR)
    EXPORT_FAILED_STORAGE_UNSUPPORTED = ("EXPORT_FAILED_STORAGE_UNSUPPORTED", LogLevel.ERROR)
    EXPORT_FAILED_STORAGE_ACCESS_DENIED = ("EXPORT_FAILED_STORAGE_ACCESS_DENIED", LogLevel.ERROR)
    EXPORT_FAILED_STORAGE_NOT_FOUND = ("EXPORT_FAILED_STORAGE_NOT_FOUND", LogLevel.ERROR)
    EXPORT_FAILED_INVALID_KEY = ("EXPORT_FAILED_INVALID_KEY", LogLevel.ERROR)
    EXPORT_FAILED_AUTHENTICATION = ("EXPORT_FAILED_AUTHENTICATION", LogLevel.ERROR)
    EXPORT_FAILED_TLS = ("EXPORT_FAILED_TLS", LogLevel.ERROR)
    EXPORT_FAILED_TIMEOUT = ("EXPORT_FAILED_TIMEOUT", LogLevel.ERROR)
    EXPORT_FAILED_CONNECTION_LOST = ("EXPORT_FAILED_CONNECTION_LOST", LogLevel.ERROR)
    EXPORT_FAILED_SERVER_UNREACHABLE = ("EXPORT_FAILED_SERVER_UNREACHABLE", LogLevel.ERROR)
    EXPORT_FAILED_SERVICE_UNAVAILABLE = ("EXPORT_FAILED_SERVICE_UNAVAILABLE", LogLevel.ERROR)
    EXPORT_FAILED_INCOMPLETE_RESPONSE = ("EXPORT_FAILED_INCOMPLETE_RESPONSE", LogLevel.ERROR)
    EXPORT_FAILED_FILE_NOT_FOUND = ("EXPORT_FAILED_FILE_NOT_FOUND", LogLevel.ERROR)
    EXPORT_FAILED_FILE_EXISTS = ("EXPORT_FAILED_FILE_EXISTS", LogLevel.ERROR)
    EXPORT_FAILED_DISK_FULL = ("EXPORT_FAILED_DISK_FULL", LogLevel.ERROR)
    EXPORT_FAILED_MALFORMED_DATA = ("EXPORT_FAILED_MALFORMED_DATA", LogLevel.ERROR)
    EXPORT_FAILED_VALIDATION = ("EXPORT_FAILED_VALIDATION", LogLevel.ERROR)
    EXPORT_FAILED_CONFIGURATION = ("EXPORT_FAILED_CONFIGURATION", LogLevel.ERROR)
    EXPORT_FAILED_OS_TRANSIENT = ("EXPORT_FAILED_OS_TRANSIENT", LogLevel.ERROR)
    EXPORT_FAILED_SDK_MISMATCH = ("EXPORT_FAILED_SDK_MISMATCH", LogLevel.ERROR)
    EXPORT_FAILED_JOB_RUNNING = ("EXPORT_FAILED_JOB_RUNNING", LogLevel.WARNING)
    EXPORT_FAILED_FILES_MISSING = ("EXPORT_FAILED_FILES_MISSING", LogLevel.ERROR)
    EXPORT_FAILED_STEP = ("EXPORT_FAILED_STEP", LogLevel.ERROR)
    EXPORT_FAILED = ("EXPORT_FAILED", LogLevel.ERROR)
    # --- progress and status ---------------------------------------------------------------
    EXPORT_INITIALIZED = ("EXPORT_INITIALIZED", LogLevel.INFO)
    EXPORT_TARGET = ("EXPORT_TARGET", LogLevel.INFO)
    EXPORT_RESUMED = ("EXPORT_RESUMED", LogLevel.INFO)
    EXPORT_RESULTS_FETCHED = ("EXPORT_RESULTS_FETCHED", LogLevel.INFO)
    EXPORT_NO_RESULTS = ("EXPORT_NO_RESULTS", LogLevel.WARNING)
    EXPORT_CONVERTING = ("EXPORT_CONVERTING", LogLevel.INFO)
    EXPORT_FILES_SAVED = ("EXPORT_FILES_SAVED", LogLevel.INFO)
    EXPORT_ITEM_FAILED = ("EXPORT_ITEM_FAILED", LogLevel.WARNING)
    EXPORT_RATE_LIMITED_WAITING = ("EXPORT_RATE_LIMITED_WAITING", LogLevel.WARNING)
    EXPORT_REQUEST_RETRYING = ("EXPORT_REQUEST_RETRYING", LogLevel.WARNING)
    EXPORT_RETRYING_FAILED_ITEMS = ("EXPORT_RETRYING_FAILED_ITEMS", LogLevel.INFO)
    EXPORT_COMPLETED = ("EXPORT_COMPLETED", LogLevel.SUCCESS)
    EXPORT_COMPLETED_WITH_FAILURES = ("EXPORT_COMPLETED_WITH_FAILURES", LogLevel.WARNING)


_E = ExportLogMessageCode

register_log_messages({
    _E.EXPORT_FAILED_REDIRECT_REFUSED: {
        "en": "Export failed: the backend answered with a redirect. The SDK does not follow "
              "redirects, so your token is never sent to another address. Check the backend URL "
              "(HTTP or HTTPS, host name, path).",
        "ko": "내보내기 실패: 백엔드가 리디렉션으로 응답했습니다. 토큰이 다른 주소로 전송되지 "
              "않도록 SDK는 리디렉션을 따르지 않습니다. 백엔드 URL(HTTP/HTTPS, 호스트 이름, "
              "경로)을 확인하세요.",
    },
    _E.EXPORT_FAILED_RESPONSE_TOO_LARGE: {
        "en": "Export failed: the backend sent an answer larger than the SDK accepts, so it was "
              "not read. Retrying would get the same answer; contact the backend's administrator.",
        "ko": "내보내기 실패: 백엔드 응답이 SDK가 받을 수 있는 크기보다 커서 읽지 않았습니다. "
              "다시 시도해도 같은 응답이 오므로 백엔드 관리자에게 문의하세요.",
    },
    _E.EXPORT_FAILED_NOT_SERVED: {
        "en": "Some items were not exported: the backend did not return them (the IDs do not "
              "exist or you cannot access them). Asking again gives the same answer; check the "
              "selected items and your access to the project.",
        "ko": "일부 항목을 내보내지 못했습니다. 백엔드가 해당 항목을 돌려주지 않았습니다(존재하지 "
              "않는 ID이거나 접근 권한이 없는 ID). 다시 요청해도 결과는 같으니 선택한 항목과 "
              "프로젝트 접근 권한을 확인하세요.",
    },
    _E.EXPORT_FAILED_BAD_REQUEST: {
        "en": "Export failed: the backend rejected the request (unknown or invalid IDs). "
              "Check the selected tasks, assignments or ground truths.",
        "ko": "내보내기 실패: 백엔드가 요청을 거부했습니다(존재하지 않거나 잘못된 ID). "
              "선택한 작업, 할당 또는 정답 데이터를 확인하세요.",
    },
    _E.EXPORT_FAILED_BATCH_PARTIAL: {
        "en": "Some items could not be exported. The exported items are kept and only the "
              "failed ones will be retried.",
        "ko": "일부 항목을 내보내지 못했습니다. 이미 내보낸 항목은 유지되며 실패한 항목만 "
              "다시 시도합니다.",
    },
    _E.EXPORT_FAILED_RATE_LIMITED: {
        "en": "Export failed: the backend is limiting the request rate. Wait a moment and try "
              "again.",
        "ko": "내보내기 실패: 요청이 너무 많아 백엔드가 요청을 제한하고 있습니다. 잠시 후 다시 "
              "시도하세요.",
    },
    _E.EXPORT_FAILED_NETWORK: {
        "en": "Export failed because of a network error. Check your connection and try again.",
        "ko": "네트워크 오류로 내보내기에 실패했습니다. 연결 상태를 확인한 뒤 다시 시도하세요.",
    },
    _E.EXPORT_FAILED_PERMISSION: {
        "en": "Export failed: permission denied. Check your access to the project and to the "
              "output location.",
        "ko": "권한이 없어 내보내기에 실패했습니다. 프로젝트와 저장 위치에 대한 접근 권한을 "
              "확인하세요.",
    },
    _E.EXPORT_FAILED_STORAGE_UNSUPPORTED: {
        "en": "Export failed: the configured storage type is not supported.",
        "ko": "내보내기 실패: 설정된 스토리지 유형은 지원되지 않습니다.",
    },
    _E.EXPORT_FAILED_STORAGE_ACCESS_DENIED: {
        "en": "Export failed: the output storage refused access. Check the storage "
              "credentials and that they may write to the bucket or folder.",
        "ko": "내보내기 실패: 출력 스토리지가 접근을 거부했습니다. 스토리지 자격 증명과 해당 "
              "버킷 또는 폴더에 쓰기 권한이 있는지 확인하세요.",
    },
    _E.EXPORT_FAILED_STORAGE_NOT_FOUND: {
        "en": "Export failed: the output bucket does not exist. Check the output URL, or "
              "create the bucket first.",
        "ko": "내보내기 실패: 출력 버킷이 없습니다. 출력 URL을 확인하거나 버킷을 먼저 "
              "만드세요.",
    },
    _E.EXPORT_FAILED_INVALID_KEY: {
        "en": "Export failed: the data is missing an expected field. Check that the export "
              "target matches the data format.",
        "ko": "내보내기 실패: 데이터에 필요한 필드가 없습니다. 내보내기 대상과 데이터 형식이 "
              "맞는지 확인하세요.",
    },
    _E.EXPORT_FAILED_AUTHENTICATION: {
        "en": "Export failed: authentication was rejected. Check that your access token is "
              "valid and has not expired.",
        "ko": "내보내기 실패: 인증에 실패했습니다. 액세스 토큰이 유효하고 만료되지 않았는지 "
              "확인하세요.",
    },
    _E.EXPORT_FAILED_TLS: {
        "en": "Export failed: the server's TLS certificate could not be verified, so nothing "
              "was sent. Check the backend URL, and pass the CA bundle that signs the "
              "server's certificate.",
        "ko": "내보내기 실패: 서버의 TLS 인증서를 검증할 수 없어 아무것도 전송하지 않았습니다. "
              "백엔드 URL을 확인하고, 서버 인증서에 서명한 CA 번들을 지정하세요.",
    },
    _E.EXPORT_FAILED_TIMEOUT: {
        "en": "Export timed out. Large exports take longer; try again or export fewer items "
              "at a time.",
        "ko": "내보내기 시간이 초과되었습니다. 데이터가 많으면 오래 걸릴 수 있으니 다시 "
              "시도하거나 한 번에 내보내는 항목 수를 줄이세요.",
    },
    _E.EXPORT_FAILED_CONNECTION_LOST: {
        "en": "Export failed: the connection to the server was lost. Try again.",
        "ko": "내보내기 실패: 서버와의 연결이 끊어졌습니다. 다시 시도하세요.",
    },
    _E.EXPORT_FAILED_SERVER_UNREACHABLE: {
        "en": "Export failed: the server could not be reached. Check the server address and "
              "your network.",
        "ko": "내보내기 실패: 서버에 연결할 수 없습니다. 서버 주소와 네트워크를 확인하세요.",
    },
    _E.EXPORT_FAILED_SERVICE_UNAVAILABLE: {
        "en": "Export failed: the service is temporarily unavailable. Try again in a few "
              "minutes.",
        "ko": "내보내기 실패: 서비스를 일시적으로 사용할 수 없습니다. 몇 분 후 다시 "
              "시도하세요.",
    },
    _E.EXPORT_FAILED_INCOMPLETE_RESPONSE: {
        "en": "Export failed: a download was interrupted before it finished. Try again.",
        "ko": "내보내기 실패: 다운로드가 끝나기 전에 중단되었습니다. 다시 시도하세요.",
    },
    _E.EXPORT_FAILED_FILE_NOT_FOUND: {
        "en": "Export failed: a required file was not found.",
        "ko": "내보내기 실패: 필요한 파일을 찾을 수 없습니다.",
    },
    _E.EXPORT_FAILED_FILE_EXISTS: {
        "en": "Export failed: an output file already exists. Choose another location or "
              "remove the existing file.",
        "ko": "내보내기 실패: 출력 파일이 이미 있습니다. 다른 위치를 선택하거나 기존 파일을 "
              "삭제하세요.",
    },
    _E.EXPORT_FAILED_DISK_FULL: {
        "en": "Export failed: there is not enough disk space. Free up space and try again.",
        "ko": "내보내기 실패: 디스크 공간이 부족합니다. 공간을 확보한 뒤 다시 시도하세요.",
    },
    _E.EXPORT_FAILED_MALFORMED_RESPONSE: {
        "en": "Export failed: the backend's answer does not follow its API (it is not the API's "
              "JSON, or, for example, a listed item has no usable ID or a listing comes back to "
              "a page it already sent). Check that the backend URL points at the API; if it "
              "does, tell the backend's administrators: running the export again will not help "
              "until the backend is fixed.",
        "ko": "내보내기 실패: 백엔드 응답이 API 형식에 맞지 않습니다(API 형식의 JSON이 아니거나, "
              "쓸 수 있는 ID가 없는 항목이나 이미 보낸 페이지로 되돌아가는 목록 등). 백엔드 URL이 "
              "API 서버를 가리키는지 확인하고, 맞다면 백엔드 관리자에게 알려 주세요. 백엔드가 "
              "고쳐지기 전에는 다시 실행해도 같은 오류가 납니다.",
    },
    _E.EXPORT_FAILED_MALFORMED_DATA: {
        "en": "Export failed: the data is malformed and could not be read.",
        "ko": "내보내기 실패: 데이터 형식이 올바르지 않아 읽을 수 없습니다.",
    },
    _E.EXPORT_FAILED_VALIDATION: {
        "en": "Export failed: the export settings or data did not pass validation. Contact "
              "your administrator.",
        "ko": "내보내기 실패: 내보내기 설정 또는 데이터가 유효성 검사를 통과하지 못했습니다. "
              "관리자에게 문의하세요.",
    },
    _E.EXPORT_FAILED_CONFIGURATION: {
        "en": "Export failed: the export is not configured correctly. Contact your "
              "administrator.",
        "ko": "내보내기 실패: 내보내기 설정이 올바르지 않습니다. 관리자에게 문의하세요.",
    },
    _E.EXPORT_FAILED_OS_TRANSIENT: {
        "en": "Export failed because of a temporary system error. Try again.",
        "ko": "일시적인 시스템 오류로 내보내기에 실패했습니다. 다시 시도하세요.",
    },
    _E.EXPORT_FAILED_SDK_MISMATCH: {
        "en": "Export failed: the plugin was built for a different version of the SDK. "
              "Reinstall the plugin, or upgrade it to a version made for this SDK.",
        "ko": "내보내기 실패: 이 플러그인은 다른 버전의 SDK용으로 만들어졌습니다. "
              "플러그인을 다시 설치하거나 현재 SDK에 맞는 버전으로 업그레이드하세요.",
    },
    _E.EXPORT_FAILED_JOB_RUNNING: {
        "en": "Export not started: this job is already running. Wait for the running job to "
              "finish before starting it again.",
        "ko": "이 작업이 이미 실행 중이어서 내보내기를 시작하지 않았습니다. 실행 중인 "
              "작업이 끝난 뒤 다시 시작하세요.",
    },
    _E.EXPORT_FAILED_FILES_MISSING: {
        "en": "Export failed: an item has no file information. Check that the selected "
              "items have their files.",
        "ko": "내보내기 실패: 파일 정보가 없는 항목이 있습니다. 선택한 항목에 파일이 있는지 "
              "확인하세요.",
    },
    _E.EXPORT_FAILED_STEP: {
        "en": "Export failed at the '{step}' step.",
        "ko": "내보내기 중 '{step}' 단계에서 실패했습니다.",
    },
    _E.EXPORT_FAILED: {
        "en": "Export failed.",
        "ko": "내보내기에 실패했습니다.",
    },
    _E.EXPORT_INITIALIZED: {
        "en": "Export initialized.",
        "ko": "내보내기를 준비했습니다.",
    },
    _E.EXPORT_TARGET: {
        "en": "Exporting {target}.",
        "ko": "{target} 내보내기를 시작합니다.",
    },
    _E.EXPORT_RESUMED: {
        "en": "Resuming the previous export: {skipped} items already exported are kept; "
        "{repaired} missing or damaged ones will be exported again.",
        "ko": "이전 내보내기를 이어서 진행합니다. 이미 내보낸 {skipped}건은 건너뛰고, 없어졌거나 "
        "손상된 {repaired}건은 다시 내보냅니다.",
    },
    _E.EXPORT_RESULTS_FETCHED: {
        "en": "Fetched {count} results.",
        "ko": "결과 {count}건을 가져왔습니다.",
    },
    _E.EXPORT_NO_RESULTS: {
        "en": "There are no results to export.",
        "ko": "내보낼 결과가 없습니다.",
    },
    _E.EXPORT_CONVERTING: {
        "en": "Converting the data for export.",
        "ko": "내보낼 데이터를 변환하고 있습니다.",
    },
    _E.EXPORT_FILES_SAVED: {
        "en": "Saved {count} files.",
        "ko": "파일 {count}개를 저장했습니다.",
    },
    _E.EXPORT_ITEM_FAILED: {
        "en": "Item {item_id} could not be exported ({code}).",
        "ko": "ID {item_id} 항목을 내보내지 못했습니다({code}).",
    },
    _E.EXPORT_RATE_LIMITED_WAITING: {
        "en": "The backend is limiting the request rate; retrying in {seconds} seconds.",
        "ko": "백엔드가 요청을 제한하고 있어 {seconds}초 후 다시 시도합니다.",
    },
    _E.EXPORT_REQUEST_RETRYING: {
        "en": "The backend did not answer a request ({reason}); its {count} items will be "
        "fetched again with the next one.",
        "ko": "백엔드가 요청에 응답하지 못했습니다({reason}). 그 요청의 {count}건은 다음 요청에서 "
        "다시 가져옵니다.",
    },
    _E.EXPORT_RETRYING_FAILED_ITEMS: {
        "en": "Retrying {count} failed items.",
        "ko": "실패한 항목 {count}건을 다시 시도합니다.",
    },
    _E.EXPORT_COMPLETED: {
        "en": "Export completed.",
        "ko": "내보내기를 완료했습니다.",
    },
    _E.EXPORT_COMPLETED_WITH_FAILURES: {
        "en": "Export completed with failures: {exported} exported, {failed} failed.",
        "ko": "내보내기를 완료했지만 일부가 실패했습니다. 성공 {exported}건, 실패 {failed}건.",
    },
})

# Target names in messages ("Exporting tasks"); step names are the SDK's own terms.
register_terms({
    "ko": {
        "tasks": "작업",
        "assignments": "할당",
        "ground-truths": "정답 데이터",
    },
})
