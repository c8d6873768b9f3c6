"""Talks to a running broker the way a third-party client would: Python grpcio
(C-core, BoringSSL), knowing nothing of teleconsult but what server reflection tells
it. Prints one JSON object with what it saw; the Rust test asserts on it.

Usage: grpcio_probe.py ADDRESS CA_PEM CERT_PEM KEY_PEM
"""

import json
import sys

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc


def read(path):
    with open(path, "rb") as f:
        return f.read()


def channel(address, ca, cert=None, key=None):
    credentials = grpc.ssl_channel_credentials(
        root_certificates=ca, private_key=key, certificate_chain=cert
    )
    # The development certificate names localhost; connect to the address given.
    return grpc.secure_channel(
        address, credentials, options=[("grpc.ssl_target_name_override", "localhost")]
    )


def reflect(stub, **request):
    responses = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(**request)]))
    return next(iter(responses))


def load_pool(stub, symbol):
    """Fetches the file defining `symbol` and, transitively, its imports."""
    pool = descriptor_pool.DescriptorPool()
    seen = {}
    pending = [reflect(stub, file_containing_symbol=symbol)]
    while pending:
        response = pending.pop()
        for raw in response.file_descriptor_response.file_descriptor_proto:
            file = descriptor_pb2.FileDescriptorProto.FromString(raw)
            if file.name in seen:
                continue
            seen[file.name] = file
            for dependency in file.dependency:
                if dependency not in seen:
                    pending.append(reflect(stub, file_by_filename=dependency))
    added = set()

    def add(name):
        if name in added:
            return
        for dependency in seen[name].dependency:
            add(dependency)
        pool.Add(seen[name])
        added.add(name)

    for name in seen:
        add(name)
    return pool


def call(chan, pool, method_path, request_json):
    service_name, method_name = method_path.rsplit("/", 1)
    method = pool.FindServiceByName(service_name).methods_by_name[method_name]
    request_class = message_factory.GetMessageClass(method.input_type)
    response_class = message_factory.GetMessageClass(method.output_type)
    request = json_format.Parse(request_json, request_class())
    invoke = chan.unary_unary(
        "/" + method_path,
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=response_class.FromString,
    )
    return json_format.MessageToDict(invoke(request, timeout=10))


def main():
    address, ca_path, cert_path, key_path = sys.argv[1:5]
    ca, cert, key = read(ca_path), read(cert_path), read(key_path)
    seen = {}

    chan = channel(address, ca, cert, key)
    health = health_pb2_grpc.HealthStub(chan)
    seen["health"] = health_pb2.HealthCheckResponse.ServingStatus.Name(
        health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10).status
    )
    reflection = reflection_pb2_grpc.ServerReflectionStub(chan)
    listed = reflect(reflection, list_services="")
    seen["services"] = sorted(s.name for s in listed.list_services_response.service)

    pool = load_pool(reflection, "teleconsult.v1.DirectoryService")
    who = call(chan, pool, "teleconsult.v1.DirectoryService/WhoAmI", "{}")
    seen["who_am_i"] = who["principal"]["userId"]
    found = call(
        chan,
        pool,
        "teleconsult.v1.DirectoryService/SearchSpecialists",
        '{"specialty": "cardiology"}',
    )
    seen["cardiologists"] = sorted(s["userId"] for s in found.get("specialists", []))
    try:
        call(chan, pool, "teleconsult.v1.DirectoryService/GetUser", '{"id": "Not An Id"}')
        seen["invalid"] = "OK"
    except grpc.RpcError as error:
        seen["invalid"] = error.code().name
        seen["invalid_message"] = error.details()
    try:
        scheduling = load_pool(reflection, "teleconsult.v1.SchedulingService")
        call(chan, scheduling, "teleconsult.v1.SchedulingService/ListConsultations", "{}")
        seen["scheduling"] = "OK"
    except grpc.RpcError as error:
        seen["scheduling"] = error.code().name

    anonymous = channel(address, ca)
    try:
        health_pb2_grpc.HealthStub(anonymous).Check(health_pb2.HealthCheckRequest(), timeout=10)
        seen["without_certificate"] = "OK"
    except grpc.RpcError as error:
        seen["without_certificate"] = error.code().name

    print(json.dumps(seen))


if __name__ == "__main__":
    main()
