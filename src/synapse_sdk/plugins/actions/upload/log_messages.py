"""The upload action's log message codes and their en/ko templates.

Same shape as the export category: failure codes (``UPLOAD_FAILED_*``) returned by
:func:`classify_upload_error`, then the progress codes an upload logs. Every member has English
and Korean templates with the same placeholders.
"""

from __future__ import annotations

from synapse_sdk.plugins.log_messages import LogLevel, LogMessageCode, register_log_messages

__all__ = ["UploadLogMessageCode"]


class UploadLogMessageCode(LogMessageCode):
    """Codes the upload action logs; each carries the level the UI renders it at."""

    # --- v2 catalog (backend error.code) ---------------------------------------------------
    UPLOAD_FAILED_FILE_TOO_LARGE = ("UPLOAD_FAILED_FILE_TOO_LARGE", LogLevel.ERROR)
    UPLOAD_FAILED_UNSUPPORTED_FILE_TYPE = ("UPLOAD_FAILED_UNSUPPORTED_FILE_TYPE", LogLevel.ERROR)
    UPLOAD_FAILED_CHECKSUM_MISMATCH = ("UPLOAD_FAILED_CHECKSUM_MISMATCH", LogLevel.ERROR)
    UPLOAD_FAILED_QUOTA_EXCEEDED = ("UPLOAD_FAILED_QUOTA_EXCEEDED", LogLevel.ERROR)
    UPLOAD_FAILED_URL_EXPIRED = ("UPLOAD_FAILED_URL_EXPIRED", LogLevel.ERROR)
    UPLOAD_FAILED_DUPLICATE = ("UPLOAD_FAILED_DUPLICATE", LogLevel.WARNING)
    UPLOAD_FAILED_BATCH_PARTIAL = ("UPLOAD_FAILED_BATCH_PARTIAL", LogLevel.WARNING)
    UPLOAD_FAILED_RATE_LIMITED = ("UPLOAD_FAILED_RATE_LIMITED", LogLevel.ERROR)
    # --- our transport's codes (BackendError.error_code) ---------------------------------
    UPLOAD_FAILED_REDIRECT_REFUSED = ("UPLOAD_FAILED_REDIRECT_REFUSED", LogLevel.ERROR)
    UPLOAD_FAILED_RESPONSE_TOO_LARGE = ("UPLOAD_FAILED_RESPONSE_TOO_LARGE", LogLevel.ERROR)
    UPLOAD_FAILED_MALFORMED_RESPONSE = ("UPLOAD_FAILED_MALFORMED_RESPONSE", LogLevel.ERROR)
    # --- v1 patterns -----------------------------------------------------------------------
    UPLOAD_FAILED_FILE_NOT_FOUND = ("UPLOAD_FAILED_FILE_NOT_FOUND", LogLevel.ERROR)
    UPLOAD_FAILED_PERMISSION = ("UPLOAD_FAILED_PERMISSION", LogLevel.ERROR)
    UPLOAD_FAILED_AUTHENTICATION = ("UPLOAD_FAILED_AUTHENTICATION", LogLevel.ERROR)
    UPLOAD_FAILED_MALFORMED_DATA = ("UPLOAD_FAILED_MALFORMED_DATA", LogLevel.ERROR)
    UPLOAD_FAILED_VALIDATION = ("UPLOAD_FAILED_VALIDATION", LogLevel.ERROR)
    UPLOAD_FAILED_CONNECTION_LOST = ("UPLOAD_FAILED_CONNECTION_LOST", LogLevel.ERROR)
    UPLOAD_FAILED_SERVER_UNREACHABLE = ("UPLOAD_FAILED_SERVER_UNREACHABLE", LogLevel.ERROR)
    UPLOAD_FAILED_SERVICE_UNAVAILABLE = ("UPLOAD_FAILED_SERVICE_UNAVAILABLE", LogLevel.ERROR)
    UPLOAD_FAILED_TIMEOUT = ("UPLOAD_FAILED_TIMEOUT", LogLevel.ERROR)
    UPLOAD_FAILED_NETWORK = ("UPLOAD_FAILED_NETWORK", LogLevel.ERROR)
    UPLOAD_FAILED_OS_TRANSIENT = ("UPLOAD_FAILED_OS_TRANSIENT", LogLevel.ERROR)
    UPLOAD_FAILED_SDK_MISMATCH = ("UPLOAD_FAILED_SDK_MISMATCH", LogLevel.ERROR)
    UPLOAD_FAILED_JOB_RUNNING = ("UPLOAD_FAILED_JOB_RUNNING", LogLevel.WARNING)
    UPLOAD_FAILED_STEP = ("UPLOAD_FAILED_STEP", LogLevel.ERROR)
    UPLOAD_FAILED = ("UPLOAD_FAILED", LogLevel.ERROR)
    # --- progress and status ---------------------------------------------------------------
    UPLOAD_INITIALIZED = ("UPLOAD_INITIALIZED", LogLevel.INFO)
    UPLOAD_FILES_DISCOVERED = ("UPLOAD_FILES_DISCOVERED", LogLevel.INFO)
    UPLOAD_PROGRESS = ("UPLOAD_PROGRESS", LogLevel.INFO)
    UPLOAD_FILE_FAILED = ("UPLOAD_FILE_FAILED", LogLevel.WARNING)
    UPLOAD_RATE_LIMITED_WAITING = ("UPLOAD_RATE_LIMITED_WAITING", LogLevel.WARNING)
    UPLOAD_RETRYING_FAILED_ITEMS = ("UPLOAD_RETRYING_FAILED_ITEMS", LogLevel.INFO)
    UPLOAD_COMPLETED = ("UPLOAD_COMPLETED", LogLevel.SUCCESS)
    UPLOAD_COMPLETED_WITH_FAILURES = ("UPLOAD_COMPLETED_WITH_FAILURES", LogLevel.WARNING)


_U = UploadLogMessageCode

register_log_messages({
    _U.UPLOAD_FAILED_REDIRECT_REFUSED: {
        "en": "Upload failed: the backend answered with a redirect. The SDK does not follow "
              "redirects, so your token is never sent to another address. Check the backend URL "
              "(HTTP or HTTPS, host name, path).",
        "ko": "업로드 실패: 백엔드가 리디렉션으로 응답했습니다. 토큰이 다른 주소로 전송되지 "
              "않도록 SDK는 리디렉션을 따르지 않습니다. 백엔드 URL(HTTP/HTTPS, 호스트 이름, "
              "경로)을 확인하세요.",
    },
    _U.UPLOAD_FAILED_RESPONSE_TOO_LARGE: {
        "en": "Upload failed: the backend sent an answer larger than the SDK accepts, so it was "
              "not read. Retrying would get the same answer; contact the backend's administrator.",
        "ko": "업로드 실패: 백엔드 응답이 SDK가 받을 수 있는 크기보다 커서 읽지 않았습니다. 다시 "
              "시도해도 같은 응답이 오므로 백엔드 관리자에게 문의하세요.",
    },
    _U.UPLOAD_FAILED_MALFORMED_RESPONSE: {
        "en": "Upload failed: the backend's answer is not the API's JSON. Check that the backend "
              "URL points at the API; if it does, contact the backend's administrator.",
        "ko": "업로드 실패: 백엔드 응답이 API 형식의 JSON이 아닙니다. 백엔드 URL이 API 서버를 "
              "가리키는지 확인하고, 맞다면 백엔드 관리자에게 문의하세요.",
    },
    _U.UPLOAD_FAILED_FILE_TOO_LARGE: {
        "en": "Upload failed: the file is larger than the allowed size.",
        "ko": "업로드 실패: 파일이 허용된 크기보다 큽니다.",
    },
    _U.UPLOAD_FAILED_UNSUPPORTED_FILE_TYPE: {
        "en": "Upload failed: this file type is not supported.",
        "ko": "업로드 실패: 지원하지 않는 파일 형식입니다.",
    },
    _U.UPLOAD_FAILED_CHECKSUM_MISMATCH: {
        "en": "Upload failed: the uploaded file did not match its checksum. It will be sent "
              "again.",
        "ko": "업로드 실패: 업로드된 파일의 체크섬이 일치하지 않습니다. 파일을 다시 "
              "전송합니다.",
    },
    _U.UPLOAD_FAILED_QUOTA_EXCEEDED: {
        "en": "Upload failed: the storage quota is exceeded. Free up space or ask your "
              "administrator for a larger quota.",
        "ko": "업로드 실패: 저장 용량 한도를 초과했습니다. 공간을 확보하거나 관리자에게 "
              "용량 증설을 요청하세요.",
    },
    _U.UPLOAD_FAILED_URL_EXPIRED: {
        "en": "Upload failed: the upload link expired. A new link will be requested.",
        "ko": "업로드 실패: 업로드 링크가 만료되었습니다. 새 링크를 요청합니다.",
    },
    _U.UPLOAD_FAILED_DUPLICATE: {
        "en": "The file was already uploaded and was skipped.",
        "ko": "이미 업로드된 파일이라 건너뛰었습니다.",
    },
    _U.UPLOAD_FAILED_BATCH_PARTIAL: {
        "en": "Some files could not be uploaded. The uploaded files are kept and only the "
              "failed ones will be retried.",
        "ko": "일부 파일을 업로드하지 못했습니다. 업로드된 파일은 유지되며 실패한 파일만 "
              "다시 시도합니다.",
    },
    _U.UPLOAD_FAILED_RATE_LIMITED: {
        "en": "Upload failed: the backend is limiting the request rate. Wait a moment and try "
              "again.",
        "ko": "업로드 실패: 요청이 너무 많아 백엔드가 요청을 제한하고 있습니다. 잠시 후 다시 "
              "시도하세요.",
    },
    _U.UPLOAD_FAILED_FILE_NOT_FOUND: {
        "en": "Upload failed: the file to upload was not found.",
        "ko": "업로드 실패: 업로드할 파일을 찾을 수 없습니다.",
    },
    _U.UPLOAD_FAILED_PERMISSION: {
        "en": "Upload failed: permission denied. Check your access to the file and the "
              "destination.",
        "ko": "권한이 없어 업로드에 실패했습니다. 파일과 업로드 위치에 대한 접근 권한을 "
              "확인하세요.",
    },
    _U.UPLOAD_FAILED_AUTHENTICATION: {
        "en": "Upload failed: authentication was rejected. Check that your access token is "
              "valid and has not expired.",
        "ko": "업로드 실패: 인증에 실패했습니다. 액세스 토큰이 유효하고 만료되지 않았는지 "
              "확인하세요.",
    },
    _U.UPLOAD_FAILED_MALFORMED_DATA: {
        "en": "Upload failed: the file or its metadata is malformed and could not be read.",
        "ko": "업로드 실패: 파일 또는 메타데이터 형식이 올바르지 않아 읽을 수 없습니다.",
    },
    _U.UPLOAD_FAILED_VALIDATION: {
        "en": "Upload failed: the upload settings or data did not pass validation. Contact "
              "your administrator.",
        "ko": "업로드 실패: 업로드 설정 또는 데이터가 유효성 검사를 통과하지 못했습니다. "
              "관리자에게 문의하세요.",
    },
    _U.UPLOAD_FAILED_CONNECTION_LOST: {
        "en": "Upload failed: the connection was lost before the upload finished. Try again.",
        "ko": "업로드 실패: 업로드가 끝나기 전에 연결이 끊어졌습니다. 다시 시도하세요.",
    },
    _U.UPLOAD_FAILED_SERVER_UNREACHABLE: {
        "en": "Upload failed: the server could not be reached. Check the server address and "
              "your network.",
        "ko": "업로드 실패: 서버에 연결할 수 없습니다. 서버 주소와 네트워크를 확인하세요.",
    },
    _U.UPLOAD_FAILED_SERVICE_UNAVAILABLE: {
        "en": "Upload failed: the service is temporarily unavailable. Try again in a few "
              "minutes.",
        "ko": "업로드 실패: 서비스를 일시적으로 사용할 수 없습니다. 몇 분 후 다시 "
              "시도하세요.",
    },
    _U.UPLOAD_FAILED_TIMEOUT: {
        "en": "Upload timed out. Large files take longer; try again.",
        "ko": "업로드 시간이 초과되었습니다. 큰 파일은 오래 걸릴 수 있으니 다시 시도하세요.",
    },
    _U.UPLOAD_FAILED_NETWORK: {
        "en": "Upload failed because of a network error. Check your connection and try again.",
        "ko": "네트워크 오류로 업로드에 실패했습니다. 연결 상태를 확인한 뒤 다시 시도하세요.",
    },
    _U.UPLOAD_FAILED_OS_TRANSIENT: {
        "en": "Upload failed because of a temporary system error. Try again.",
        "ko": "일시적인 시스템 오류로 업로드에 실패했습니다. 다시 시도하세요.",
    },
    _U.UPLOAD_FAILED_SDK_MISMATCH: {
        "en": "Upload failed: the plugin was built for a different version of the SDK. "
              "Reinstall the plugin, or upgrade it to a version made for this SDK.",
        "ko": "업로드 실패: 이 플러그인은 다른 버전의 SDK용으로 만들어졌습니다. 플러그인을 "
              "다시 설치하거나 현재 SDK에 맞는 버전으로 업그레이드하세요.",
    },
    _U.UPLOAD_FAILED_JOB_RUNNING: {
        "en": "Upload not started: this job is already running. Wait for the running job to "
              "finish before starting it again.",
        "ko": "이 작업이 이미 실행 중이어서 업로드를 시작하지 않았습니다. 실행 중인 작업이 "
              "끝난 뒤 다시 시작하세요.",
    },
    _U.UPLOAD_FAILED_STEP: {
        "en": "Upload failed at the '{step}' step.",
        "ko": "업로드 중 '{step}' 단계에서 실패했습니다.",
    },
    _U.UPLOAD_FAILED: {
        "en": "Upload failed.",
        "ko": "업로드에 실패했습니다.",
    },
    _U.UPLOAD_INITIALIZED: {
        "en": "Upload initialized.",
        "ko": "업로드를 준비했습니다.",
    },
    _U.UPLOAD_FILES_DISCOVERED: {
        "en": "Found {count} files to upload.",
        "ko": "업로드할 파일 {count}개를 찾았습니다.",
    },
    _U.UPLOAD_PROGRESS: {
        "en": "Uploaded {uploaded} of {total} files.",
        "ko": "파일 {total}개 중 {uploaded}개를 업로드했습니다.",
    },
    _U.UPLOAD_FILE_FAILED: {
        "en": "File {name} could not be uploaded ({code}).",
        "ko": "파일 {name}을(를) 업로드하지 못했습니다({code}).",
    },
    _U.UPLOAD_RATE_LIMITED_WAITING: {
        "en": "The backend is limiting the request rate; retrying in {seconds} seconds.",
        "ko": "백엔드가 요청을 제한하고 있어 {seconds}초 후 다시 시도합니다.",
    },
    _U.UPLOAD_RETRYING_FAILED_ITEMS: {
        "en": "Retrying {count} failed files.",
        "ko": "실패한 파일 {count}개를 다시 시도합니다.",
    },
    _U.UPLOAD_COMPLETED: {
        "en": "Upload completed: {count} files uploaded.",
        "ko": "업로드를 완료했습니다. 파일 {count}개를 업로드했습니다.",
    },
    _U.UPLOAD_COMPLETED_WITH_FAILURES: {
        "en": "Upload completed with failures: {uploaded} uploaded, {failed} failed.",
        "ko": "업로드를 완료했지만 일부가 실패했습니다. 성공 {uploaded}개, 실패 {failed}개.",
    },
})
