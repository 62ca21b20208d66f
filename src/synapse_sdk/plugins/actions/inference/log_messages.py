"""The inference action's log message codes and their en/ko templates.

Failure codes (``INFERENCE_FAILED_*``) are what :func:`classify_inference_error` returns;
progress codes are what an inference run logs. Every member has English and Korean templates
with the same placeholders.
"""

from __future__ import annotations

from synapse_sdk.plugins.log_messages import LogLevel, LogMessageCode, register_log_messages

__all__ = ["InferenceLogMessageCode"]


class InferenceLogMessageCode(LogMessageCode):
    """Codes the inference action logs; each carries the level the UI renders it at."""

    # --- v2 catalog (backend error.code) ---------------------------------------------------
    INFERENCE_FAILED_MODEL_NOT_LOADED = ("INFERENCE_FAILED_MODEL_NOT_LOADED", LogLevel.ERROR)
    INFERENCE_FAILED_MODEL_NOT_FOUND = ("INFERENCE_FAILED_MODEL_NOT_FOUND", LogLevel.ERROR)
    INFERENCE_FAILED_INPUT_TOO_LARGE = ("INFERENCE_FAILED_INPUT_TOO_LARGE", LogLevel.ERROR)
    INFERENCE_FAILED_INVALID_INPUT = ("INFERENCE_FAILED_INVALID_INPUT", LogLevel.ERROR)
    INFERENCE_FAILED_TIMEOUT = ("INFERENCE_FAILED_TIMEOUT", LogLevel.ERROR)
    INFERENCE_FAILED_BATCH_PARTIAL = ("INFERENCE_FAILED_BATCH_PARTIAL", LogLevel.WARNING)
    INFERENCE_FAILED_RATE_LIMITED = ("INFERENCE_FAILED_RATE_LIMITED", LogLevel.ERROR)
    # --- our transport's codes (BackendError.error_code) ---------------------------------
    INFERENCE_FAILED_REDIRECT_REFUSED = ("INFERENCE_FAILED_REDIRECT_REFUSED", LogLevel.ERROR)
    INFERENCE_FAILED_RESPONSE_TOO_LARGE = ("INFERENCE_FAILED_RESPONSE_TOO_LARGE", LogLevel.ERROR)
    INFERENCE_FAILED_MALFORMED_RESPONSE = ("INFERENCE_FAILED_MALFORMED_RESPONSE", LogLevel.ERROR)
    # --- v1 patterns -----------------------------------------------------------------------
    INFERENCE_FAILED_OUT_OF_MEMORY = ("INFERENCE_FAILED_OUT_OF_MEMORY", LogLevel.ERROR)
    INFERENCE_FAILED_MALFORMED_DATA = ("INFERENCE_FAILED_MALFORMED_DATA", LogLevel.ERROR)
    INFERENCE_FAILED_FILE_NOT_FOUND = ("INFERENCE_FAILED_FILE_NOT_FOUND", LogLevel.ERROR)
    INFERENCE_FAILED_PERMISSION = ("INFERENCE_FAILED_PERMISSION", LogLevel.ERROR)
    INFERENCE_FAILED_CONNECTION_LOST = ("INFERENCE_FAILED_CONNECTION_LOST", LogLevel.ERROR)
    INFERENCE_FAILED_SERVER_UNREACHABLE = ("INFERENCE_FAILED_SERVER_UNREACHABLE", LogLevel.ERROR)
    INFERENCE_FAILED_SERVICE_UNAVAILABLE = (
        "INFERENCE_FAILED_SERVICE_UNAVAILABLE",
        LogLevel.ERROR,
    )
    INFERENCE_FAILED_NETWORK = ("INFERENCE_FAILED_NETWORK", LogLevel.ERROR)
    INFERENCE_FAILED_SDK_MISMATCH = ("INFERENCE_FAILED_SDK_MISMATCH", LogLevel.ERROR)
    INFERENCE_FAILED_JOB_RUNNING = ("INFERENCE_FAILED_JOB_RUNNING", LogLevel.WARNING)
    INFERENCE_FAILED_STEP = ("INFERENCE_FAILED_STEP", LogLevel.ERROR)
    INFERENCE_FAILED = ("INFERENCE_FAILED", LogLevel.ERROR)
    # --- progress and status ---------------------------------------------------------------
    INFERENCE_INITIALIZED = ("INFERENCE_INITIALIZED", LogLevel.INFO)
    INFERENCE_MODEL_LOADING = ("INFERENCE_MODEL_LOADING", LogLevel.INFO)
    INFERENCE_MODEL_LOADED = ("INFERENCE_MODEL_LOADED", LogLevel.INFO)
    INFERENCE_ITEM_FAILED = ("INFERENCE_ITEM_FAILED", LogLevel.WARNING)
    INFERENCE_RETRYING_FAILED_ITEMS = ("INFERENCE_RETRYING_FAILED_ITEMS", LogLevel.INFO)
    INFERENCE_COMPLETED = ("INFERENCE_COMPLETED", LogLevel.SUCCESS)
    INFERENCE_COMPLETED_WITH_FAILURES = ("INFERENCE_COMPLETED_WITH_FAILURES", LogLevel.WARNING)


_I = InferenceLogMessageCode

register_log_messages({
    _I.INFERENCE_FAILED_REDIRECT_REFUSED: {
        "en": "Inference failed: the backend answered with a redirect. The SDK does not follow "
              "redirects, so your token is never sent to another address. Check the backend URL "
              "(HTTP or HTTPS, host name, path).",
        "ko": "추론 실패: 백엔드가 리디렉션으로 응답했습니다. 토큰이 다른 주소로 전송되지 않도록 "
              "SDK는 리디렉션을 따르지 않습니다. 백엔드 URL(HTTP/HTTPS, 호스트 이름, 경로)을 "
              "확인하세요.",
    },
    _I.INFERENCE_FAILED_RESPONSE_TOO_LARGE: {
        "en": "Inference failed: the backend sent an answer larger than the SDK accepts, so it "
              "was not read. Retrying would get the same answer; contact the backend's "
              "administrator.",
        "ko": "추론 실패: 백엔드 응답이 SDK가 받을 수 있는 크기보다 커서 읽지 않았습니다. 다시 "
              "시도해도 같은 응답이 오므로 백엔드 관리자에게 문의하세요.",
    },
    _I.INFERENCE_FAILED_MALFORMED_RESPONSE: {
        "en": "Inference failed: the backend's answer is not the API's JSON. Check that the "
              "backend URL points at the API; if it does, contact the backend's administrator.",
        "ko": "추론 실패: 백엔드 응답이 API 형식의 JSON이 아닙니다. 백엔드 URL이 API 서버를 "
              "가리키는지 확인하고, 맞다면 백엔드 관리자에게 문의하세요.",
    },
    _I.INFERENCE_FAILED_MODEL_NOT_LOADED: {
        "en": "Inference failed: the model is not loaded yet. It will be retried once the "
              "model is ready.",
        "ko": "추론 실패: 모델이 아직 로드되지 않았습니다. 모델이 준비되면 다시 시도합니다.",
    },
    _I.INFERENCE_FAILED_MODEL_NOT_FOUND: {
        "en": "Inference failed: the model was not found.",
        "ko": "추론 실패: 모델을 찾을 수 없습니다.",
    },
    _I.INFERENCE_FAILED_INPUT_TOO_LARGE: {
        "en": "Inference failed: the input is larger than the model accepts.",
        "ko": "추론 실패: 입력이 모델이 처리할 수 있는 크기보다 큽니다.",
    },
    _I.INFERENCE_FAILED_INVALID_INPUT: {
        "en": "Inference failed: the input is invalid for this model.",
        "ko": "추론 실패: 이 모델에 맞지 않는 입력입니다.",
    },
    _I.INFERENCE_FAILED_TIMEOUT: {
        "en": "Inference timed out. Try again or send a smaller input.",
        "ko": "추론 시간이 초과되었습니다. 다시 시도하거나 더 작은 입력을 보내세요.",
    },
    _I.INFERENCE_FAILED_BATCH_PARTIAL: {
        "en": "Some inputs could not be processed. The results are kept and only the failed "
              "inputs will be retried.",
        "ko": "일부 입력을 처리하지 못했습니다. 처리된 결과는 유지되며 실패한 입력만 다시 "
              "시도합니다.",
    },
    _I.INFERENCE_FAILED_RATE_LIMITED: {
        "en": "Inference failed: the service is limiting the request rate. Wait a moment and "
              "try again.",
        "ko": "추론 실패: 요청이 너무 많아 서비스가 요청을 제한하고 있습니다. 잠시 후 다시 "
              "시도하세요.",
    },
    _I.INFERENCE_FAILED_OUT_OF_MEMORY: {
        "en": "Inference failed: out of memory. Send a smaller input or a smaller batch.",
        "ko": "추론 실패: 메모리가 부족합니다. 입력이나 배치 크기를 줄이세요.",
    },
    _I.INFERENCE_FAILED_MALFORMED_DATA: {
        "en": "Inference failed: the data is malformed and could not be read.",
        "ko": "추론 실패: 데이터 형식이 올바르지 않아 읽을 수 없습니다.",
    },
    _I.INFERENCE_FAILED_FILE_NOT_FOUND: {
        "en": "Inference failed: a required file was not found.",
        "ko": "추론 실패: 필요한 파일을 찾을 수 없습니다.",
    },
    _I.INFERENCE_FAILED_PERMISSION: {
        "en": "Inference failed: access was denied. Check your permissions and credentials.",
        "ko": "추론 실패: 접근이 거부되었습니다. 권한과 인증 정보를 확인하세요.",
    },
    _I.INFERENCE_FAILED_CONNECTION_LOST: {
        "en": "Inference failed: the connection to the model server was lost. Try again.",
        "ko": "추론 실패: 모델 서버와의 연결이 끊어졌습니다. 다시 시도하세요.",
    },
    _I.INFERENCE_FAILED_SERVER_UNREACHABLE: {
        "en": "Inference failed: the model server could not be reached.",
        "ko": "추론 실패: 모델 서버에 연결할 수 없습니다.",
    },
    _I.INFERENCE_FAILED_SERVICE_UNAVAILABLE: {
        "en": "Inference failed: the service is temporarily unavailable. Try again in a few "
              "minutes.",
        "ko": "추론 실패: 서비스를 일시적으로 사용할 수 없습니다. 몇 분 후 다시 "
              "시도하세요.",
    },
    _I.INFERENCE_FAILED_NETWORK: {
        "en": "Inference failed because of a network error. Try again.",
        "ko": "네트워크 오류로 추론에 실패했습니다. 다시 시도하세요.",
    },
    _I.INFERENCE_FAILED_SDK_MISMATCH: {
        "en": "Inference failed: the plugin was built for a different version of the SDK. "
              "Reinstall the plugin, or upgrade it to a version made for this SDK.",
        "ko": "추론 실패: 이 플러그인은 다른 버전의 SDK용으로 만들어졌습니다. 플러그인을 "
              "다시 설치하거나 현재 SDK에 맞는 버전으로 업그레이드하세요.",
    },
    _I.INFERENCE_FAILED_JOB_RUNNING: {
        "en": "Inference not started: this job is already running. Wait for the running job "
              "to finish before starting it again.",
        "ko": "이 작업이 이미 실행 중이어서 추론을 시작하지 않았습니다. 실행 중인 작업이 "
              "끝난 뒤 다시 시작하세요.",
    },
    _I.INFERENCE_FAILED_STEP: {
        "en": "Inference failed at the '{step}' step.",
        "ko": "추론 중 '{step}' 단계에서 실패했습니다.",
    },
    _I.INFERENCE_FAILED: {
        "en": "Inference failed.",
        "ko": "추론에 실패했습니다.",
    },
    _I.INFERENCE_INITIALIZED: {
        "en": "Inference initialized.",
        "ko": "추론을 준비했습니다.",
    },
    _I.INFERENCE_MODEL_LOADING: {
        "en": "Loading model {model}.",
        "ko": "모델 {model}을(를) 불러오는 중입니다.",
    },
    _I.INFERENCE_MODEL_LOADED: {
        "en": "Model {model} is loaded.",
        "ko": "모델 {model}을(를) 불러왔습니다.",
    },
    _I.INFERENCE_ITEM_FAILED: {
        "en": "Input {item_id} could not be processed ({code}).",
        "ko": "입력 {item_id}을(를) 처리하지 못했습니다({code}).",
    },
    _I.INFERENCE_RETRYING_FAILED_ITEMS: {
        "en": "Retrying {count} failed inputs.",
        "ko": "실패한 입력 {count}건을 다시 시도합니다.",
    },
    _I.INFERENCE_COMPLETED: {
        "en": "Inference completed: {count} inputs processed.",
        "ko": "추론을 완료했습니다. 입력 {count}건을 처리했습니다.",
    },
    _I.INFERENCE_COMPLETED_WITH_FAILURES: {
        "en": "Inference completed with failures: {succeeded} succeeded, {failed} failed.",
        "ko": "추론을 완료했지만 일부가 실패했습니다. 성공 {succeeded}건, 실패 {failed}건.",
    },
})
