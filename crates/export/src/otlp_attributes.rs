//! A record's fields as OTLP attributes, straight from its `Serialize`
//! (the same names and values its JSON has): building a JSON value first and
//! converting it cost more than everything else the OTLP exporter does per
//! record. Keys are renamed to netobserv's OpenTelemetry names on the way
//! (`attribute_name`), at every depth, as the JSON path did.

use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, KeyValue, KeyValueList, any_value::Value,
};
use serde::ser::{self, Serialize};
use std::fmt;

/// The record's fields as attributes; a field that is `None` is left out.
pub fn attributes_of<T: Serialize>(record: &T, rename: fn(&str) -> &str) -> Vec<KeyValue> {
    match record.serialize(ValueSerializer { rename }) {
        Ok(Some(AnyValue {
            value: Some(Value::KvlistValue(list)),
        })) => list.values,
        _ => Vec::new(),
    }
}

/// Why a value could not become an attribute (only a map key that is not a
/// string or a number; the records have none).
#[derive(Debug)]
pub struct AttributeError(String);

impl fmt::Display for AttributeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for AttributeError {}

impl ser::Error for AttributeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        AttributeError(msg.to_string())
    }
}

type Result<T> = std::result::Result<T, AttributeError>;

fn some(value: Value) -> Result<Option<AnyValue>> {
    Ok(Some(AnyValue { value: Some(value) }))
}

/// Serialises one value; `None` stands for JSON's null (left out).
#[derive(Clone, Copy)]
struct ValueSerializer {
    rename: fn(&str) -> &str,
}

struct SeqCollector {
    /// What serialises each element.
    serializer: ValueSerializer,
    values: Vec<AnyValue>,
    /// A tuple variant's name: the sequence goes under it, as in JSON.
    variant: Option<&'static str>,
}

struct MapCollector {
    /// What serialises each key and value (and renames the keys).
    serializer: ValueSerializer,
    values: Vec<KeyValue>,
    next_key: Option<String>,
    variant: Option<&'static str>,
}

/// `{variant: value}`, serde_json's shape for a variant with data.
fn tagged(
    serializer: ValueSerializer,
    variant: &str,
    value: Option<AnyValue>,
) -> Result<Option<AnyValue>> {
    let mut map = serializer.map(Some(1), None);
    map.push(variant, value);
    map.finish()
}

impl MapCollector {
    fn push(&mut self, key: &str, value: Option<AnyValue>) {
        if let Some(value) = value {
            self.values.push(KeyValue {
                key: (self.serializer.rename)(key).to_string(),
                value: Some(value),
                ..Default::default()
            });
        }
    }

    fn finish(self) -> Result<Option<AnyValue>> {
        let list = Value::KvlistValue(KeyValueList {
            values: self.values,
        });
        match self.variant {
            Some(v) => tagged(self.serializer, v, Some(AnyValue { value: Some(list) })),
            None => some(list),
        }
    }
}

impl SeqCollector {
    fn finish(self) -> Result<Option<AnyValue>> {
        let array = Value::ArrayValue(ArrayValue {
            values: self.values,
        });
        match self.variant {
            Some(v) => tagged(self.serializer, v, Some(AnyValue { value: Some(array) })),
            None => some(array),
        }
    }
}

impl ser::SerializeSeq for SeqCollector {
    type Ok = Option<AnyValue>;
    type Error = AttributeError;
    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<()> {
        // An array holds no nulls (as the JSON path dropped them).
        self.values.extend(value.serialize(self.serializer)?);
        Ok(())
    }
    fn end(self) -> Result<Option<AnyValue>> {
        self.finish()
    }
}

macro_rules! seq_like {
    ($trait:ident, $method:ident) => {
        impl ser::$trait for SeqCollector {
            type Ok = Option<AnyValue>;
            type Error = AttributeError;
            fn $method<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<()> {
                ser::SerializeSeq::serialize_element(self, value)
            }
            fn end(self) -> Result<Option<AnyValue>> {
                self.finish()
            }
        }
    };
}
seq_like!(SerializeTuple, serialize_element);
seq_like!(SerializeTupleStruct, serialize_field);
seq_like!(SerializeTupleVariant, serialize_field);

impl ser::SerializeMap for MapCollector {
    type Ok = Option<AnyValue>;
    type Error = AttributeError;
    fn serialize_key<T: ?Sized + Serialize>(&mut self, key: &T) -> Result<()> {
        let key = match key.serialize(self.serializer)?.and_then(|v| v.value) {
            Some(Value::StringValue(s)) => s,
            Some(Value::IntValue(i)) => i.to_string(),
            Some(Value::DoubleValue(d)) => d.to_string(),
            Some(Value::BoolValue(b)) => b.to_string(),
            _ => return Err(AttributeError("a map key is not a string".into())),
        };
        self.next_key = Some(key);
        Ok(())
    }
    fn serialize_value<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<()> {
        let key = self
            .next_key
            .take()
            .ok_or_else(|| AttributeError("a map value without its key".into()))?;
        let value = value.serialize(self.serializer)?;
        self.push(&key, value);
        Ok(())
    }
    fn end(self) -> Result<Option<AnyValue>> {
        self.finish()
    }
}

macro_rules! struct_like {
    ($trait:ident) => {
        impl ser::$trait for MapCollector {
            type Ok = Option<AnyValue>;
            type Error = AttributeError;
            fn serialize_field<T: ?Sized + Serialize>(
                &mut self,
                key: &'static str,
                value: &T,
            ) -> Result<()> {
                let value = value.serialize(self.serializer)?;
                self.push(key, value);
                Ok(())
            }
            fn end(self) -> Result<Option<AnyValue>> {
                self.finish()
            }
        }
    };
}
struct_like!(SerializeStruct);
struct_like!(SerializeStructVariant);

impl ValueSerializer {
    fn seq(self, len: Option<usize>, variant: Option<&'static str>) -> SeqCollector {
        SeqCollector {
            serializer: self,
            values: Vec::with_capacity(len.unwrap_or(0)),
            variant,
        }
    }

    fn map(self, len: Option<usize>, variant: Option<&'static str>) -> MapCollector {
        MapCollector {
            serializer: self,
            values: Vec::with_capacity(len.unwrap_or(0)),
            next_key: None,
            variant,
        }
    }
}

impl ser::Serializer for ValueSerializer {
    type Ok = Option<AnyValue>;
    type Error = AttributeError;
    type SerializeSeq = SeqCollector;
    type SerializeTuple = SeqCollector;
    type SerializeTupleStruct = SeqCollector;
    type SerializeTupleVariant = SeqCollector;
    type SerializeMap = MapCollector;
    type SerializeStruct = MapCollector;
    type SerializeStructVariant = MapCollector;

    fn serialize_bool(self, v: bool) -> Result<Self::Ok> {
        some(Value::BoolValue(v))
    }
    fn serialize_i8(self, v: i8) -> Result<Self::Ok> {
        self.serialize_i64(v.into())
    }
    fn serialize_i16(self, v: i16) -> Result<Self::Ok> {
        self.serialize_i64(v.into())
    }
    fn serialize_i32(self, v: i32) -> Result<Self::Ok> {
        self.serialize_i64(v.into())
    }
    fn serialize_i64(self, v: i64) -> Result<Self::Ok> {
        some(Value::IntValue(v))
    }
    fn serialize_u8(self, v: u8) -> Result<Self::Ok> {
        self.serialize_i64(v.into())
    }
    fn serialize_u16(self, v: u16) -> Result<Self::Ok> {
        self.serialize_i64(v.into())
    }
    fn serialize_u32(self, v: u32) -> Result<Self::Ok> {
        self.serialize_i64(v.into())
    }
    fn serialize_u64(self, v: u64) -> Result<Self::Ok> {
        match i64::try_from(v) {
            Ok(i) => self.serialize_i64(i),
            // Past i64: as a double (no counter gets there).
            Err(_) => self.serialize_f64(v as f64),
        }
    }
    fn serialize_f32(self, v: f32) -> Result<Self::Ok> {
        self.serialize_f64(v.into())
    }
    fn serialize_f64(self, v: f64) -> Result<Self::Ok> {
        // JSON has no NaN or infinity: serde_json writes null, left out.
        if v.is_finite() {
            some(Value::DoubleValue(v))
        } else {
            Ok(None)
        }
    }
    fn serialize_char(self, v: char) -> Result<Self::Ok> {
        some(Value::StringValue(v.to_string()))
    }
    fn serialize_str(self, v: &str) -> Result<Self::Ok> {
        some(Value::StringValue(v.to_string()))
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<Self::Ok> {
        some(Value::BytesValue(v.to_vec()))
    }
    fn serialize_none(self) -> Result<Self::Ok> {
        Ok(None)
    }
    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Result<Self::Ok> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<Self::Ok> {
        Ok(None)
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<Self::Ok> {
        Ok(None)
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<Self::Ok> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<Self::Ok> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<Self::Ok> {
        let value = value.serialize(self)?;
        tagged(self, variant, value)
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<SeqCollector> {
        Ok(self.seq(len, None))
    }
    fn serialize_tuple(self, len: usize) -> Result<SeqCollector> {
        Ok(self.seq(Some(len), None))
    }
    fn serialize_tuple_struct(self, _name: &'static str, len: usize) -> Result<SeqCollector> {
        Ok(self.seq(Some(len), None))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<SeqCollector> {
        Ok(self.seq(Some(len), Some(variant)))
    }
    fn serialize_map(self, len: Option<usize>) -> Result<MapCollector> {
        Ok(self.map(len, None))
    }
    fn serialize_struct(self, _name: &'static str, len: usize) -> Result<MapCollector> {
        Ok(self.map(Some(len), None))
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<MapCollector> {
        Ok(self.map(Some(len), Some(variant)))
    }
}
