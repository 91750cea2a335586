//! JSON decoding that matches struct fields the way Go's `encoding/json` does: an exact match
//! first, else a case-insensitive one (rpcx-protocol.md 2: `{"a":1}` fills field `A`).
//!
//! serde matches field names exactly, so this wraps the `serde_json` deserializer: when a struct
//! is asked for, each map key is replaced by the field name it matches before serde sees it.
//! Nested structs inside sequences, options and maps are handled the same way. No allocation is
//! added: keys are compared in place.

use std::fmt;

use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, IntoDeserializer, MapAccess, SeqAccess,
    VariantAccess, Visitor,
};

/// Deserializes `T` from JSON, matching struct fields case-insensitively.
pub fn from_slice_case_insensitive<T: de::DeserializeOwned>(
    payload: &[u8],
) -> Result<T, serde_json::Error> {
    let mut inner = serde_json::Deserializer::from_slice(payload);
    let value = T::deserialize(CaseInsensitive(&mut inner))?;
    inner.end()?;
    Ok(value)
}

/// A deserializer that rewrites struct keys to the field names they match.
struct CaseInsensitive<D>(D);

/// The same wrapping, applied to what a visitor is handed.
struct Wrap<V>(V);

/// A struct visitor that knows the field names.
struct StructVisitor<V> {
    inner: V,
    fields: &'static [&'static str],
}

/// A map access whose keys are rewritten to field names.
struct FieldMap<A> {
    inner: A,
    fields: &'static [&'static str],
}

/// Reads one key and hands the matching field name to the inner seed.
struct FieldSeed<S> {
    inner: S,
    fields: &'static [&'static str],
}

macro_rules! forward {
    ($($method:ident)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
                self.0.$method(Wrap(visitor))
            }
        )*
    };
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for CaseInsensitive<D> {
    type Error = D::Error;

    forward! {
        deserialize_any deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32
        deserialize_i64 deserialize_i128 deserialize_u8 deserialize_u16 deserialize_u32
        deserialize_u64 deserialize_u128 deserialize_f32 deserialize_f64 deserialize_char
        deserialize_str deserialize_string deserialize_bytes deserialize_byte_buf
        deserialize_option deserialize_unit deserialize_seq deserialize_map
        deserialize_identifier deserialize_ignored_any
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_unit_struct(name, Wrap(visitor))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_newtype_struct(name, Wrap(visitor))
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_tuple(len, Wrap(visitor))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_tuple_struct(name, len, Wrap(visitor))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_struct(
            name,
            fields,
            StructVisitor {
                inner: visitor,
                fields,
            },
        )
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_enum(name, variants, Wrap(visitor))
    }
}

macro_rules! visit_forward {
    ($($method:ident($ty:ty))*) => {
        $(
            fn $method<E: de::Error>(self, v: $ty) -> Result<Self::Value, E> {
                self.0.$method(v)
            }
        )*
    };
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Wrap<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        self.0.expecting(f)
    }

    visit_forward! {
        visit_bool(bool) visit_i8(i8) visit_i16(i16) visit_i32(i32) visit_i64(i64)
        visit_i128(i128) visit_u8(u8) visit_u16(u16) visit_u32(u32) visit_u64(u64)
        visit_u128(u128) visit_f32(f32) visit_f64(f64) visit_char(char) visit_str(&str)
        visit_borrowed_str(&'de str) visit_string(String) visit_bytes(&[u8])
        visit_borrowed_bytes(&'de [u8]) visit_byte_buf(Vec<u8>)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.0.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.0.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.0.visit_some(CaseInsensitive(d))
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.0.visit_newtype_struct(CaseInsensitive(d))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        self.0.visit_seq(Wrap(seq))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.0.visit_map(Wrap(map))
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Self::Value, A::Error> {
        self.0.visit_enum(Wrap(data))
    }
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Wrap<A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Self::Error> {
        self.0.next_element_seed(Wrap(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Wrap<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        self.0.next_key_seed(seed)
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<T::Value, Self::Error> {
        self.0.next_value_seed(Wrap(seed))
    }
}

impl<'de, A: EnumAccess<'de>> EnumAccess<'de> for Wrap<A> {
    type Error = A::Error;
    type Variant = Wrap<A::Variant>;

    fn variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<(T::Value, Self::Variant), Self::Error> {
        self.0
            .variant_seed(seed)
            .map(|(value, variant)| (value, Wrap(variant)))
    }
}

impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for Wrap<A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), Self::Error> {
        self.0.unit_variant()
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<T::Value, Self::Error> {
        self.0.newtype_variant_seed(Wrap(seed))
    }

    fn tuple_variant<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.tuple_variant(len, Wrap(visitor))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.struct_variant(
            fields,
            StructVisitor {
                inner: visitor,
                fields,
            },
        )
    }
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Wrap<S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.0.deserialize(CaseInsensitive(d))
    }
}

impl<'de, V: Visitor<'de>> Visitor<'de> for StructVisitor<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        self.inner.expecting(f)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.inner.visit_map(FieldMap {
            inner: map,
            fields: self.fields,
        })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        self.inner.visit_seq(Wrap(seq))
    }
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for FieldMap<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        self.inner.next_key_seed(FieldSeed {
            inner: seed,
            fields: self.fields,
        })
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<T::Value, Self::Error> {
        self.inner.next_value_seed(Wrap(seed))
    }
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for FieldSeed<S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de, S: DeserializeSeed<'de>> Visitor<'de> for FieldSeed<S> {
    type Value = S::Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Self::Value, E> {
        match field_named(self.fields, key) {
            Some(field) => self.inner.deserialize(field.into_deserializer()),
            // Unknown keys pass through unchanged: serde ignores them, as Go does.
            None => self.inner.deserialize(key.into_deserializer()),
        }
    }
}

/// The field `key` names: the one spelled exactly so, else the first that matches ignoring ASCII
/// case.
fn field_named(fields: &'static [&'static str], key: &str) -> Option<&'static str> {
    let key = key.as_bytes();
    let exact = fields.iter().find(|f| same_bytes(f.as_bytes(), key));
    exact
        .or_else(|| {
            fields
                .iter()
                .find(|f| f.as_bytes().eq_ignore_ascii_case(key))
        })
        .copied()
}

/// `a == b`, compared inline: field names are a few bytes long, and `==` called `memcmp` once
/// per field of the key's length (Arith.Mul over JSON, 10 connections x 32 in flight, callgrind:
/// 1706.8 -> 1685.8 instructions per request). One pass that also folds case per byte cost more.
#[inline]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(a, b)| a == b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Args {
        #[serde(rename = "A")]
        a: i64,
        #[serde(rename = "B", default)]
        b: i64,
        #[serde(default)]
        inner: Option<Vec<Inner>>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Inner {
        #[serde(rename = "Name")]
        name: String,
    }

    #[test]
    fn matches_fields_like_go() {
        let args: Args =
            from_slice_case_insensitive(br#"{"a":1,"b":2,"x":3,"INNER":[{"name":"n"}]}"#).unwrap();
        assert_eq!(
            args,
            Args {
                a: 1,
                b: 2,
                inner: Some(vec![Inner { name: "n".into() }])
            }
        );
    }

    #[test]
    fn an_exact_match_wins_over_an_earlier_folded_one() {
        const FIELDS: &[&str] = &["name", "Name", "NAME", "nAmE"];
        assert_eq!(field_named(FIELDS, "Name"), Some("Name"));
        assert_eq!(field_named(FIELDS, "NAME"), Some("NAME"));
        // No exact match: the first field that folds to the key, as Go's decoder picks it.
        assert_eq!(field_named(FIELDS, "naME"), Some("name"));
        assert_eq!(field_named(&FIELDS[1..], "naME"), Some("Name"));
        assert_eq!(field_named(FIELDS, "nam"), None);
        assert_eq!(field_named(FIELDS, "names"), None);
        assert_eq!(field_named(FIELDS, "nbme"), None);
        // Only ASCII letters fold; other bytes must be equal.
        assert_eq!(field_named(&["Größe"], "GRößE"), Some("Größe"));
        assert_eq!(field_named(&["Größe"], "GRÖßE"), None);
        assert_eq!(field_named(&["a_b"], "A_B"), Some("a_b"));
        assert_eq!(field_named(&["a_b"], "A-B"), None);
    }

    #[test]
    fn two_keys_folding_to_one_field_are_a_duplicate() {
        // Both keys name field A: serde reports a duplicate field, as it does for {"A":1,"A":5}
        // (Go would keep the last value; see the README's list of differences).
        let err = from_slice_case_insensitive::<Args>(br#"{"a":1,"A":5}"#).unwrap_err();
        assert!(err.to_string().contains("duplicate field"), "{err}");
    }

    #[test]
    fn errors_and_trailing_garbage() {
        assert!(from_slice_case_insensitive::<Args>(b"").is_err());
        assert!(from_slice_case_insensitive::<Args>(br#"{"A":1} x"#).is_err());
        assert!(from_slice_case_insensitive::<Args>(br#"{"A":"no"}"#).is_err());
    }
}
