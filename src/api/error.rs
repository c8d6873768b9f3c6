//! The one place that knows gRPC status codes. Handlers produce [`ApiError`]s (from
//! domain validation, policy and store errors) and end in `.map_err(Into::into)`.

use tonic::{Code, Status};

use crate::audit::Outcome;
use crate::domain::InvalidField;
use crate::domain::consultation::LifecycleError;
use crate::domain::opinion::OpinionError;
use crate::domain::session::AdmissionRefused;
use crate::relay::RelayError;
use crate::relay::lifecycle::SessionLifecycleError;
use crate::relay::room::RoomError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    PermissionDenied(String),
    #[error(transparent)]
    InvalidArgument(#[from] InvalidField),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    FailedPrecondition(String),
    /// A concurrent change won; the caller may read again and retry.
    #[error("{0}")]
    Aborted(String),
    #[error("{0}")]
    Unavailable(String),
    /// Too many attempts; the caller may try again later.
    #[error("{0}")]
    ResourceExhausted(String),
    /// Details go to the log, never to the caller: they may mention patient data.
    #[error("internal error: {0}")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    /// How a call that failed this way is recorded in the audit log.
    pub fn outcome(&self) -> Outcome {
        match self {
            ApiError::Unauthenticated(_)
            | ApiError::PermissionDenied(_)
            | ApiError::ResourceExhausted(_) => Outcome::Denied,
            ApiError::InvalidArgument(_)
            | ApiError::NotFound(_)
            | ApiError::AlreadyExists(_)
            | ApiError::FailedPrecondition(_)
            | ApiError::Aborted(_) => Outcome::Invalid,
            ApiError::Unavailable(_) | ApiError::Internal(_) => Outcome::Error,
        }
    }

    pub fn code(&self) -> Code {
        match self {
            ApiError::Unauthenticated(_) => Code::Unauthenticated,
            ApiError::PermissionDenied(_) => Code::PermissionDenied,
            ApiError::InvalidArgument(_) => Code::InvalidArgument,
            ApiError::NotFound(_) => Code::NotFound,
            ApiError::AlreadyExists(_) => Code::AlreadyExists,
            ApiError::FailedPrecondition(_) => Code::FailedPrecondition,
            ApiError::Aborted(_) => Code::Aborted,
            ApiError::Unavailable(_) => Code::Unavailable,
            ApiError::ResourceExhausted(_) => Code::ResourceExhausted,
            ApiError::Internal(_) => Code::Internal,
        }
    }
}

impl From<LifecycleError> for ApiError {
    fn from(error: LifecycleError) -> Self {
        ApiError::FailedPrecondition(error.to_string())
    }
}

impl From<OpinionError> for ApiError {
    fn from(error: OpinionError) -> Self {
        ApiError::FailedPrecondition(error.to_string())
    }
}

impl From<AdmissionRefused> for ApiError {
    fn from(refusal: AdmissionRefused) -> Self {
        match refusal {
            AdmissionRefused::NotParticipant(_) => ApiError::PermissionDenied(refusal.to_string()),
            _ => ApiError::FailedPrecondition(refusal.to_string()),
        }
    }
}

impl From<RelayError> for ApiError {
    fn from(error: RelayError) -> Self {
        match error {
            RelayError::Lifecycle(SessionLifecycleError::Lifecycle(error)) => error.into(),
            RelayError::Lifecycle(SessionLifecycleError::Store(error)) => error.into(),
            RelayError::Lifecycle(SessionLifecycleError::NotFound(id)) => {
                ApiError::NotFound(format!("consultation {id} not found"))
            }
            RelayError::NotInSession(user) => {
                ApiError::FailedPrecondition(format!("{user} is not in the session"))
            }
            RelayError::Room(RoomError::Signaling(message)) => {
                ApiError::FailedPrecondition(message)
            }
            error @ (RelayError::Room(RoomError::WebRtc(_)) | RelayError::IceTcp { .. }) => {
                ApiError::Internal(Box::new(error))
            }
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound { .. } => ApiError::NotFound(error.to_string()),
            StoreError::AlreadyExists { .. } => ApiError::AlreadyExists(error.to_string()),
            StoreError::Conflict(message) => ApiError::FailedPrecondition(message),
            StoreError::Concurrent { .. } => ApiError::Aborted(error.to_string()),
            StoreError::Unavailable(_) => {
                ApiError::Unavailable("the broker's database is unavailable; try again".into())
            }
            StoreError::Internal(source) => ApiError::Internal(source),
        }
    }
}

impl From<ApiError> for Status {
    fn from(error: ApiError) -> Self {
        let code = error.code();
        match error {
            ApiError::Internal(source) => {
                tracing::error!(error = %source, "internal error");
                Status::new(code, "internal error; the broker's log has the details")
            }
            other => Status::new(code, other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_say_nothing_about_their_cause() {
        let cause = std::io::Error::other("patient P-0042 row is corrupt");
        let status = Status::from(ApiError::Internal(Box::new(cause)));
        assert_eq!(status.code(), Code::Internal);
        assert!(!status.message().contains("P-0042"));
    }

    #[test]
    fn invalid_arguments_name_the_field() {
        let status = Status::from(ApiError::from(InvalidField::new(
            "user.id",
            "must not be empty",
        )));
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(status.message(), "user.id: must not be empty");
    }

    #[test]
    fn store_errors_map_to_their_codes() {
        let cases = [
            (StoreError::not_found("user", "x"), Code::NotFound),
            (StoreError::already_exists("user", "x"), Code::AlreadyExists),
            (StoreError::Conflict("no".into()), Code::FailedPrecondition),
            (
                StoreError::Concurrent {
                    entity: "consultation",
                    id: "c-1".into(),
                },
                Code::Aborted,
            ),
            (StoreError::Unavailable("down".into()), Code::Unavailable),
            (StoreError::corrupt("bad"), Code::Internal),
        ];
        for (error, code) in cases {
            assert_eq!(Status::from(ApiError::from(error)).code(), code);
        }
    }
}
