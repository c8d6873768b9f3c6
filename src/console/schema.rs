//! The message schema the console's protobuf codec works from, as JSON, made from the
//! same compiled descriptors that server reflection serves: the browser never holds a
//! hand-kept copy of the protos that could drift from them.

use prost::Message;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FileDescriptorSet};
use serde_json::{Map, Value, json};

/// The schema of every message, enum and service in `descriptor_set` (an encoded
/// `FileDescriptorSet`).
pub fn from_descriptor_set(descriptor_set: &[u8]) -> Result<Value, prost::DecodeError> {
    let set = FileDescriptorSet::decode(descriptor_set)?;
    let mut messages = Map::new();
    let mut enums = Map::new();
    let mut services = Map::new();
    for file in &set.file {
        let package = file.package();
        for message in &file.message_type {
            add_message(package, message, &mut messages, &mut enums);
        }
        for enumeration in &file.enum_type {
            add_enum(
                &format!("{package}.{}", enumeration.name()),
                enumeration,
                &mut enums,
            );
        }
        for service in &file.service {
            let methods: Map<String, Value> = service
                .method
                .iter()
                .map(|method| {
                    (
                        method.name().to_owned(),
                        json!({
                            "input": method.input_type().trim_start_matches('.'),
                            "output": method.output_type().trim_start_matches('.'),
                            "client_streaming": method.client_streaming(),
                            "server_streaming": method.server_streaming(),
                        }),
                    )
                })
                .collect();
            services.insert(
                format!("{package}.{}", service.name()),
                Value::Object(methods),
            );
        }
    }
    Ok(json!({ "messages": messages, "enums": enums, "services": services }))
}

fn add_enum(
    full_name: &str,
    enumeration: &prost_types::EnumDescriptorProto,
    enums: &mut Map<String, Value>,
) {
    let values: Map<String, Value> = enumeration
        .value
        .iter()
        .map(|value| (value.name().to_owned(), json!(value.number())))
        .collect();
    enums.insert(full_name.to_owned(), Value::Object(values));
}

fn add_message(
    scope: &str,
    message: &DescriptorProto,
    messages: &mut Map<String, Value>,
    enums: &mut Map<String, Value>,
) {
    let full_name = format!("{scope}.{}", message.name());
    let fields: Vec<Value> = message
        .field
        .iter()
        .map(|field| {
            let oneof = field
                .oneof_index
                .and_then(|index| message.oneof_decl.get(index as usize))
                .map(|oneof| oneof.name().to_owned());
            let type_name = match field.r#type() {
                Type::Message | Type::Enum | Type::Group => {
                    Some(field.type_name().trim_start_matches('.').to_owned())
                }
                _ => None,
            };
            json!({
                "name": field.name(),
                "number": field.number(),
                "type": type_label(field.r#type()),
                "repeated": field.label() == Label::Repeated,
                "type_name": type_name,
                "oneof": oneof,
            })
        })
        .collect();
    let map_entry = message
        .options
        .as_ref()
        .is_some_and(|options| options.map_entry());
    messages.insert(
        full_name.clone(),
        json!({ "fields": fields, "map_entry": map_entry }),
    );
    for nested in &message.nested_type {
        add_message(&full_name, nested, messages, enums);
    }
    for enumeration in &message.enum_type {
        add_enum(
            &format!("{full_name}.{}", enumeration.name()),
            enumeration,
            enums,
        );
    }
}

fn type_label(kind: Type) -> &'static str {
    match kind {
        Type::Double => "double",
        Type::Float => "float",
        Type::Int64 => "int64",
        Type::Uint64 => "uint64",
        Type::Int32 => "int32",
        Type::Fixed64 => "fixed64",
        Type::Fixed32 => "fixed32",
        Type::Bool => "bool",
        Type::String => "string",
        Type::Group => "group",
        Type::Message => "message",
        Type::Bytes => "bytes",
        Type::Uint32 => "uint32",
        Type::Enum => "enum",
        Type::Sfixed32 => "sfixed32",
        Type::Sfixed64 => "sfixed64",
        Type::Sint32 => "sint32",
        Type::Sint64 => "sint64",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_describes_the_services_messages_and_enums() {
        let schema = from_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET).unwrap();
        let sign_in = &schema["services"]["teleconsult.v1.AccountService"]["SignIn"];
        assert_eq!(sign_in["input"], "teleconsult.v1.SignInRequest");
        assert_eq!(sign_in["server_streaming"], false);
        assert_eq!(
            schema["services"]["teleconsult.v1.SessionService"]["Open"]["server_streaming"],
            true
        );
        assert_eq!(schema["enums"]["teleconsult.v1.Role"]["ROLE_DOCTOR"], 2);
        let fields = schema["messages"]["teleconsult.v1.SignalRequest"]["fields"]
            .as_array()
            .unwrap();
        let join = fields.iter().find(|f| f["name"] == "join").unwrap();
        assert_eq!(join["number"], 1);
        assert_eq!(join["type"], "message");
        assert_eq!(join["type_name"], "teleconsult.v1.JoinSession");
        assert_eq!(join["oneof"], "message");
        // Well-known types come along with the files that import them.
        assert!(schema["messages"]["google.protobuf.Timestamp"].is_object());
        // Nested enums are named by their scope.
        assert!(schema["enums"]["teleconsult.v1.ConsultationEvent.Kind"].is_object());
    }
}
