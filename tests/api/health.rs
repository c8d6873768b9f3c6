//! Health and reflection over mutual TLS, as grpcurl and other stacks use them.

use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

use crate::helpers::TestApp;

#[tokio::test]
async fn health_reports_serving_over_mtls() {
    let app = TestApp::spawn().await;
    let mut health = HealthClient::new(app.channel_as("biru-nurse-dawa"));
    for service in ["", "teleconsult.v1.DirectoryService"] {
        let response = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(response.status(), ServingStatus::Serving, "{service:?}");
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "teleconsult.v1.NoSuchService".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
}

async fn reflect(app: &TestApp, request: MessageRequest) -> MessageResponse {
    let mut reflection = ServerReflectionClient::new(app.channel_as("zju2-cardio-chen"));
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    };
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    responses
        .message()
        .await
        .unwrap()
        .unwrap()
        .message_response
        .unwrap()
}

#[tokio::test]
async fn reflection_lists_every_service_and_resolves_their_files() {
    let app = TestApp::spawn().await;
    let MessageResponse::ListServicesResponse(list) =
        reflect(&app, MessageRequest::ListServices(String::new())).await
    else {
        panic!("expected a service list");
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    for expected in [
        "teleconsult.v1.DirectoryService",
        "teleconsult.v1.SchedulingService",
        "teleconsult.v1.SessionService",
        "teleconsult.v1.AuditService",
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }

    // A client needs the file and everything it imports (google/protobuf/timestamp).
    let MessageResponse::FileDescriptorResponse(files) = reflect(
        &app,
        MessageRequest::FileContainingSymbol("teleconsult.v1.SchedulingService".into()),
    )
    .await
    else {
        panic!("expected file descriptors");
    };
    assert!(!files.file_descriptor_proto.is_empty());
    let MessageResponse::FileDescriptorResponse(timestamp) = reflect(
        &app,
        MessageRequest::FileByFilename("google/protobuf/timestamp.proto".into()),
    )
    .await
    else {
        panic!("the well-known import must be resolvable");
    };
    assert!(!timestamp.file_descriptor_proto.is_empty());
}
