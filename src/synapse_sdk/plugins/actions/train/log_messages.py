"""The train action's log message codes and their en/ko templates.

Failure codes (``TRAIN_FAILED_*``) are what :func:`classify_train_error` returns; progress codes
are what a training run logs. Every member has English and Korean templates with the same
placeholders.
"""

from __future__ import annotations

from synapse_sdk.plugins.log_messages import LogLevel, LogMessageCode, register_log_messages

__all__ = ["TrainLogMessageCode"]


class TrainLogMessageCode(LogMessageCode):
    """Codes the train action logs; each carries the level the UI renders it at."""

    # --- v2 catalog (backend error.code) ---------------------------------------------------
    TRAIN_FAILED_DATASET_NOT_FOUND = ("TRAIN_FAILED_DATASET_NOT_FOUND", LogLevel.ERROR)
    TRAIN_FAILED_BASE_MODEL_NOT_FOUND = ("TRAIN_FAILED_BASE_MODEL_NOT_FOUND", LogLevel.ERROR)
    TRAIN_FAILED_INSUFFICIENT_RESOURCES = ("TRAIN_FAILED_INSUFFICIENT_RESOURCES", LogLevel.ERROR)
    TRAIN_FAILED_INVALID_HYPERPARAMETERS = (
        "TRAIN_FAILED_INVALID_HYPERPARAMETERS",
        LogLevel.ERROR,
    )
    TRAIN_FAILED_CHECKPOINT_WRITE = ("TRAIN_FAILED_CHECKPOINT_WRITE", LogLevel.ERROR)
    TRAIN_CANCELLED = ("TRAIN_CANCELLED", LogLevel.WARNING)
    # --- our transport's codes (BackendError.error_code) ---------------------------------
    TRAIN_FAILED_REDIRECT_REFUSED = ("TRAIN_FAILED_REDIRECT_REFUSED", LogLevel.ERROR)
    TRAIN_FAILED_RESPONSE_TOO_LARGE = ("TRAIN_FAILED_RESPONSE_TOO_LARGE", LogLevel.ERROR)
    TRAIN_FAILED_MALFORMED_RESPONSE = ("TRAIN_FAILED_MALFORMED_RESPONSE", LogLevel.ERROR)
    # --- v1 patterns -----------------------------------------------------------------------
    TRAIN_FAILED_OUT_OF_MEMORY = ("TRAIN_FAILED_OUT_OF_MEMORY", LogLevel.ERROR)
    TRAIN_FAILED_DIVERGED = ("TRAIN_FAILED_DIVERGED", LogLevel.ERROR)
    TRAIN_FAILED_MODEL_DATA_MISMATCH = ("TRAIN_FAILED_MODEL_DATA_MISMATCH", LogLevel.ERROR)
    TRAIN_FAILED_INTERRUPTED = ("TRAIN_FAILED_INTERRUPTED", LogLevel.ERROR)
    TRAIN_FAILED_DISK_FULL = ("TRAIN_FAILED_DISK_FULL", LogLevel.ERROR)
    TRAIN_FAILED_FILE_NOT_FOUND = ("TRAIN_FAILED_FILE_NOT_FOUND", LogLevel.ERROR)
    TRAIN_FAILED_MALFORMED_DATA = ("TRAIN_FAILED_MALFORMED_DATA", LogLevel.ERROR)
    TRAIN_FAILED_PERMISSION = ("TRAIN_FAILED_PERMISSION", LogLevel.ERROR)
    TRAIN_FAILED_NETWORK = ("TRAIN_FAILED_NETWORK", LogLevel.ERROR)
    TRAIN_FAILED_VALIDATION = ("TRAIN_FAILED_VALIDATION", LogLevel.ERROR)
    TRAIN_FAILED_CONFIGURATION = ("TRAIN_FAILED_CONFIGURATION", LogLevel.ERROR)
    TRAIN_FAILED_SDK_MISMATCH = ("TRAIN_FAILED_SDK_MISMATCH", LogLevel.ERROR)
    TRAIN_FAILED_JOB_RUNNING = ("TRAIN_FAILED_JOB_RUNNING", LogLevel.WARNING)
    TRAIN_FAILED_STEP = ("TRAIN_FAILED_STEP", LogLevel.ERROR)
    TRAIN_FAILED = ("TRAIN_FAILED", LogLevel.ERROR)
    # --- progress and status ---------------------------------------------------------------
    TRAIN_INITIALIZED = ("TRAIN_INITIALIZED", LogLevel.INFO)
    TRAIN_DATASET_LOADED = ("TRAIN_DATASET_LOADED", LogLevel.INFO)
    TRAIN_RESUMED = ("TRAIN_RESUMED", LogLevel.INFO)
    TRAIN_EPOCH_STARTED = ("TRAIN_EPOCH_STARTED", LogLevel.INFO)
    TRAIN_EPOCH_COMPLETED = ("TRAIN_EPOCH_COMPLETED", LogLevel.INFO)
    TRAIN_CHECKPOINT_SAVED = ("TRAIN_CHECKPOINT_SAVED", LogLevel.INFO)
    TRAIN_COMPLETED = ("TRAIN_COMPLETED", LogLevel.SUCCESS)


_T = TrainLogMessageCode

register_log_messages({
    _T.TRAIN_FAILED_REDIRECT_REFUSED: {
        "en": "Training failed: the backend answered with a redirect. The SDK does not follow "
              "redirects, so your token is never sent to another address. Check the backend URL "
              "(HTTP or HTTPS, host name, path).",
        "ko": "학습 실패: 백엔드가 리디렉션으로 응답했습니다. 토큰이 다른 주소로 전송되지 않도록 "
              "SDK는 리디렉션을 따르지 않습니다. 백엔드 URL(HTTP/HTTPS, 호스트 이름, 경로)을 "
              "확인하세요.",
    },
    _T.TRAIN_FAILED_RESPONSE_TOO_LARGE: {
        "en": "Training failed: the backend sent an answer larger than the SDK accepts, so it was "
              "not read. Retrying would get the same answer; contact the backend's administrator.",
        "ko": "학습 실패: 백엔드 응답이 SDK가 받을 수 있는 크기보다 커서 읽지 않았습니다. 다시 "
              "시도해도 같은 응답이 오므로 백엔드 관리자에게 문의하세요.",
    },
    _T.TRAIN_FAILED_MALFORMED_RESPONSE: {
        "en": "Training failed: the backend's answer is not the API's JSON. Check that the "
              "backend URL points at the API; if it does, contact the backend's administrator.",
        "ko": "학습 실패: 백엔드 응답이 API 형식의 JSON이 아닙니다. 백엔드 URL이 API 서버를 "
              "가리키는지 확인하고, 맞다면 백엔드 관리자에게 문의하세요.",
    },
    _T.TRAIN_FAILED_DATASET_NOT_FOUND: {
        "en": "Training failed: the dataset was not found.",
        "ko": "학습 실패: 데이터셋을 찾을 수 없습니다.",
    },
    _T.TRAIN_FAILED_BASE_MODEL_NOT_FOUND: {
        "en": "Training failed: the base model was not found.",
        "ko": "학습 실패: 기반 모델을 찾을 수 없습니다.",
    },
    _T.TRAIN_FAILED_INSUFFICIENT_RESOURCES: {
        "en": "Training failed: not enough GPU or compute resources are available. It will be "
              "retried when resources free up.",
        "ko": "학습 실패: 사용할 수 있는 GPU 또는 컴퓨팅 자원이 부족합니다. 자원이 확보되면 "
              "다시 시도합니다.",
    },
    _T.TRAIN_FAILED_INVALID_HYPERPARAMETERS: {
        "en": "Training failed: the hyperparameters are invalid. Check the training settings.",
        "ko": "학습 실패: 하이퍼파라미터가 올바르지 않습니다. 학습 설정을 확인하세요.",
    },
    _T.TRAIN_FAILED_CHECKPOINT_WRITE: {
        "en": "Training failed: a checkpoint could not be saved.",
        "ko": "학습 실패: 체크포인트를 저장하지 못했습니다.",
    },
    _T.TRAIN_CANCELLED: {
        "en": "Training was cancelled.",
        "ko": "학습이 취소되었습니다.",
    },
    _T.TRAIN_FAILED_OUT_OF_MEMORY: {
        "en": "Training failed: out of memory. Reduce the batch size or the input size.",
        "ko": "학습 실패: 메모리가 부족합니다. 배치 크기나 입력 크기를 줄이세요.",
    },
    _T.TRAIN_FAILED_DIVERGED: {
        "en": "Training failed: the loss diverged (NaN or infinite). Lower the learning rate "
              "and try again.",
        "ko": "학습 실패: 손실 값이 발산했습니다(NaN 또는 무한대). 학습률을 낮춰 다시 "
              "시도하세요.",
    },
    _T.TRAIN_FAILED_MODEL_DATA_MISMATCH: {
        "en": "Training failed: the model and the data do not fit together (shape or size "
              "mismatch).",
        "ko": "학습 실패: 모델과 데이터의 형태가 맞지 않습니다(크기 또는 차원 불일치).",
    },
    _T.TRAIN_FAILED_INTERRUPTED: {
        "en": "Training was interrupted before it finished. It can resume from the last "
              "checkpoint.",
        "ko": "학습이 끝나기 전에 중단되었습니다. 마지막 체크포인트부터 다시 시작할 수 "
              "있습니다.",
    },
    _T.TRAIN_FAILED_DISK_FULL: {
        "en": "Training failed: there is not enough disk space. Free up space and try again.",
        "ko": "학습 실패: 디스크 공간이 부족합니다. 공간을 확보한 뒤 다시 시도하세요.",
    },
    _T.TRAIN_FAILED_FILE_NOT_FOUND: {
        "en": "Training failed: a required file was not found.",
        "ko": "학습 실패: 필요한 파일을 찾을 수 없습니다.",
    },
    _T.TRAIN_FAILED_MALFORMED_DATA: {
        "en": "Training failed: the training data is malformed and could not be read.",
        "ko": "학습 실패: 학습 데이터 형식이 올바르지 않아 읽을 수 없습니다.",
    },
    _T.TRAIN_FAILED_PERMISSION: {
        "en": "Training failed: access was denied. Check your permissions and credentials.",
        "ko": "학습 실패: 접근이 거부되었습니다. 권한과 인증 정보를 확인하세요.",
    },
    _T.TRAIN_FAILED_NETWORK: {
        "en": "Training failed because of a network error. Try again.",
        "ko": "네트워크 오류로 학습에 실패했습니다. 다시 시도하세요.",
    },
    _T.TRAIN_FAILED_VALIDATION: {
        "en": "Training failed: the training settings or data did not pass validation. "
              "Contact your administrator.",
        "ko": "학습 실패: 학습 설정 또는 데이터가 유효성 검사를 통과하지 못했습니다. "
              "관리자에게 문의하세요.",
    },
    _T.TRAIN_FAILED_CONFIGURATION: {
        "en": "Training failed: the training environment is not configured correctly "
              "(for example the GPU driver). Contact your administrator.",
        "ko": "학습 실패: 학습 환경 설정이 올바르지 않습니다(예: GPU 드라이버). 관리자에게 "
              "문의하세요.",
    },
    _T.TRAIN_FAILED_SDK_MISMATCH: {
        "en": "Training failed: the plugin was built for a different version of the SDK. "
              "Reinstall the plugin, or upgrade it to a version made for this SDK.",
        "ko": "학습 실패: 이 플러그인은 다른 버전의 SDK용으로 만들어졌습니다. 플러그인을 "
              "다시 설치하거나 현재 SDK에 맞는 버전으로 업그레이드하세요.",
    },
    _T.TRAIN_FAILED_JOB_RUNNING: {
        "en": "Training not started: this job is already running. Wait for the running job "
              "to finish before starting it again.",
        "ko": "이 작업이 이미 실행 중이어서 학습을 시작하지 않았습니다. 실행 중인 작업이 "
              "끝난 뒤 다시 시작하세요.",
    },
    _T.TRAIN_FAILED_STEP: {
        "en": "Training failed at the '{step}' step.",
        "ko": "학습 중 '{step}' 단계에서 실패했습니다.",
    },
    _T.TRAIN_FAILED: {
        "en": "Training failed.",
        "ko": "학습에 실패했습니다.",
    },
    _T.TRAIN_INITIALIZED: {
        "en": "Training initialized.",
        "ko": "학습을 준비했습니다.",
    },
    _T.TRAIN_DATASET_LOADED: {
        "en": "Loaded {count} training samples.",
        "ko": "학습 데이터 {count}건을 불러왔습니다.",
    },
    _T.TRAIN_RESUMED: {
        "en": "Resuming training from the checkpoint of epoch {epoch}.",
        "ko": "{epoch} 에포크 체크포인트부터 학습을 이어서 진행합니다.",
    },
    _T.TRAIN_EPOCH_STARTED: {
        "en": "Epoch {epoch}/{epochs} started.",
        "ko": "{epoch}/{epochs} 에포크를 시작합니다.",
    },
    _T.TRAIN_EPOCH_COMPLETED: {
        "en": "Epoch {epoch}/{epochs} completed (loss {loss}).",
        "ko": "{epoch}/{epochs} 에포크를 완료했습니다(손실 {loss}).",
    },
    _T.TRAIN_CHECKPOINT_SAVED: {
        "en": "Saved the checkpoint of epoch {epoch}.",
        "ko": "{epoch} 에포크 체크포인트를 저장했습니다.",
    },
    _T.TRAIN_COMPLETED: {
        "en": "Training completed.",
        "ko": "학습을 완료했습니다.",
    },
})
