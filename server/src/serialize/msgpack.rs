//! MsgPack encoding that writes the bytes Go's rpcx MsgPack codec writes (rpcx-protocol.md 2).
//!
//! Go's codec is vmihailenco/msgpack v5 with default options: structs are maps keyed by field name
//! and, because compact integers are off by default, every integer is written in the **fixed width
//! of its Go type**: `int64` as `0xd3` plus 8 bytes, `uint8` as `0xcc` plus 1, and so on, even when
//! the value would fit a positive fixint. `rmp_serde::encode::write_named` gets the maps right but
//! writes integers compactly (`{C:200}` comes out `81 a1 43 cc c8` where Go writes
//! `81 a1 43 d3 00 00 00 00 00 00 00 c8`). Go decoders accept either, but replies must be
//! byte-identical to Go's.
//!
//! [`to_writer_go`] wraps the rmp-serde named-map serializer: the integer methods write the fixed
//! form of their Rust type (`i64` mirrors Go's `int64`, `u8` Go's `uint8`, ...), and every
//! compound (sequence, map, tuple, struct, enum variant) hands its elements back to the wrapper, so
//! integers at any depth are fixed too. Everything else is rmp-serde's own output, which is already
//! Go's: strings as str, `serialize_bytes` as bin, `f32`/`f64` as `0xca`/`0xcb`, `None` as nil,
//! lengths in their smallest form. Nothing is allocated per call, except a buffer for a sequence or
//! map whose length is not known up front (for example a struct with `#[serde(flatten)]`), whose
//! header must be written before its elements, as rmp-serde does too.
//!
//! Where Rust and Go types differ, the serde data model decides, so Go's bytes are matched only for
//! the Rust type that mirrors the Go one:
//! - Go's `[]byte` is bin: use a type that calls `serialize_bytes` (`serde_bytes`, `bytes::Bytes`).
//!   A `Vec<u8>` or `[u8; N]` is a sequence to serde and is written as an array of `0xcc` bytes.
//! - A unit struct is written as rmp-serde writes it, an empty array (Go decodes it into a struct).
//! - Go's platform-sized `int` and `uint` are the exception to Go's fixed widths: v5 writes them
//!   compactly (`[]int{-5, 5, 200}` is `93 fb 05 cc c8`). No Rust integer type stands for them;
//!   Go services exchanging `int64` (as rpcx's Arith does) match Rust's `i64`.

use std::io::Write;

use rmp_serde::config::{DefaultConfig, StructMapConfig};
use rmp_serde::encode::Error;
use serde::ser;
use serde::Serialize;

/// rmp-serde's serializer with structs as named maps: what `write_named` uses.
type Named<W> = rmp_serde::Serializer<W, StructMapConfig<DefaultConfig>>;

/// Writes `value` to `writer` as Go's vmihailenco/msgpack v5 would: structs as maps keyed by field
/// name, integers in the fixed width of their type at any depth.
///
/// ```
/// # use serde::Serialize;
/// #[derive(Serialize)]
/// struct Reply {
///     #[serde(rename = "C")]
///     c: i64,
/// }
/// let mut out = Vec::new();
/// ringrpc_server::serialize::msgpack::to_writer_go(&mut out, &Reply { c: 200 }).unwrap();
/// assert_eq!(out, [0x81, 0xa1, b'C', 0xd3, 0, 0, 0, 0, 0, 0, 0, 200]);
/// ```
pub fn to_writer_go<W: Write, T: Serialize + ?Sized>(
    writer: &mut W,
    value: &T,
) -> Result<(), Error> {
    let mut named = rmp_serde::Serializer::new(writer).with_struct_map();
    value.serialize(GoSerializer(&mut named))
}

/// Writes `marker` and the big-endian bytes of an integer in one write.
#[inline]
fn write_fixed<W: Write, const N: usize>(
    se: &mut Named<W>,
    marker: u8,
    be_bytes: [u8; N],
) -> Result<(), Error> {
    let mut buf = [0u8; 9];
    buf[0] = marker;
    buf[1..=N].copy_from_slice(&be_bytes);
    se.get_mut().write_all(&buf[..=N]).map_err(write_error)
}

/// The error for a failed write to the underlying writer.
///
/// rmp-serde reports these as `Error::InvalidValueWrite`, whose payload type lives in the `rmp`
/// crate, which is not a dependency of this one; the I/O error's text is kept. (A `BytesMut`
/// writer, the one used on the reply path, never fails.)
#[cold]
fn write_error(err: std::io::Error) -> Error {
    Error::Syntax(format!("invalid value write: {err}"))
}

/// Writes an array header of `len` elements (Go's lengths are compact, as rmp-serde's are).
///
/// rmp-serde writes the header when a sequence of known length is opened and nothing when it is
/// closed, so the compound it returns is dropped unused.
#[inline]
fn write_array_len<W: Write>(se: &mut Named<W>, len: usize) -> Result<(), Error> {
    ser::Serializer::serialize_seq(se, Some(len)).map(drop)
}

/// Writes a map header of `len` entries, as [`write_array_len`] does for arrays.
#[inline]
fn write_map_len<W: Write>(se: &mut Named<W>, len: usize) -> Result<(), Error> {
    ser::Serializer::serialize_map(se, Some(len)).map(drop)
}

/// Writes a string (a struct field name or an enum variant name).
#[inline]
fn write_str<W: Write>(se: &mut Named<W>, s: &str) -> Result<(), Error> {
    ser::Serializer::serialize_str(se, s)
}

/// The serializer handed to every value: fixed-width integers, compounds that recurse through it,
/// everything else forwarded to rmp-serde.
struct GoSerializer<'a, W>(&'a mut Named<W>);

impl<'a, W: Write> ser::Serializer for GoSerializer<'a, W> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Elements<'a, W>;
    type SerializeTuple = Compound<'a, W>;
    type SerializeTupleStruct = Compound<'a, W>;
    type SerializeTupleVariant = Compound<'a, W>;
    type SerializeMap = Elements<'a, W>;
    type SerializeStruct = Compound<'a, W>;
    type SerializeStructVariant = Compound<'a, W>;

    /// Binary, as rmp-serde's default configuration is (serde's default would be `true`).
    fn is_human_readable(&self) -> bool {
        false
    }

    fn serialize_i8(self, v: i8) -> Result<(), Error> {
        write_fixed(self.0, 0xd0, v.to_be_bytes())
    }

    fn serialize_i16(self, v: i16) -> Result<(), Error> {
        write_fixed(self.0, 0xd1, v.to_be_bytes())
    }

    fn serialize_i32(self, v: i32) -> Result<(), Error> {
        write_fixed(self.0, 0xd2, v.to_be_bytes())
    }

    fn serialize_i64(self, v: i64) -> Result<(), Error> {
        write_fixed(self.0, 0xd3, v.to_be_bytes())
    }

    fn serialize_u8(self, v: u8) -> Result<(), Error> {
        write_fixed(self.0, 0xcc, v.to_be_bytes())
    }

    fn serialize_u16(self, v: u16) -> Result<(), Error> {
        write_fixed(self.0, 0xcd, v.to_be_bytes())
    }

    fn serialize_u32(self, v: u32) -> Result<(), Error> {
        write_fixed(self.0, 0xce, v.to_be_bytes())
    }

    fn serialize_u64(self, v: u64) -> Result<(), Error> {
        write_fixed(self.0, 0xcf, v.to_be_bytes())
    }

    fn serialize_i128(self, v: i128) -> Result<(), Error> {
        self.0.serialize_i128(v)
    }

    fn serialize_u128(self, v: u128) -> Result<(), Error> {
        self.0.serialize_u128(v)
    }

    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        self.0.serialize_bool(v)
    }

    fn serialize_f32(self, v: f32) -> Result<(), Error> {
        self.0.serialize_f32(v)
    }

    fn serialize_f64(self, v: f64) -> Result<(), Error> {
        self.0.serialize_f64(v)
    }

    fn serialize_char(self, v: char) -> Result<(), Error> {
        self.0.serialize_char(v)
    }

    fn serialize_str(self, v: &str) -> Result<(), Error> {
        self.0.serialize_str(v)
    }

    fn serialize_bytes(self, v: &[u8]) -> Result<(), Error> {
        self.0.serialize_bytes(v)
    }

    fn serialize_none(self) -> Result<(), Error> {
        self.0.serialize_none()
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Error> {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<(), Error> {
        self.0.serialize_unit()
    }

    fn serialize_unit_struct(self, name: &'static str) -> Result<(), Error> {
        self.0.serialize_unit_struct(name)
    }

    fn serialize_unit_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
    ) -> Result<(), Error> {
        self.0.serialize_unit_variant(name, index, variant)
    }

    /// A newtype is written as its inner value, except rmp-serde's extension-type marker, which
    /// rmp-serde writes itself (its tag and data are not Go integers).
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        if name == rmp_serde::MSGPACK_EXT_STRUCT_NAME {
            self.0.serialize_newtype_struct(name, value)
        } else {
            value.serialize(self)
        }
    }

    /// `{variant: value}`, as rmp-serde writes it.
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        write_map_len(self.0, 1)?;
        write_str(self.0, variant)?;
        value.serialize(self)
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<Elements<'a, W>, Error> {
        Elements::open(self.0, len, write_array_len)
    }

    fn serialize_tuple(self, len: usize) -> Result<Compound<'a, W>, Error> {
        write_array_len(self.0, len)?;
        Ok(Compound(self.0))
    }

    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<Compound<'a, W>, Error> {
        write_array_len(self.0, len)?;
        Ok(Compound(self.0))
    }

    /// `{variant: [fields...]}`, as rmp-serde writes it.
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Compound<'a, W>, Error> {
        write_map_len(self.0, 1)?;
        write_str(self.0, variant)?;
        write_array_len(self.0, len)?;
        Ok(Compound(self.0))
    }

    fn serialize_map(self, len: Option<usize>) -> Result<Elements<'a, W>, Error> {
        Elements::open(self.0, len, write_map_len)
    }

    /// A map keyed by field name, as Go writes structs.
    fn serialize_struct(self, _name: &'static str, len: usize) -> Result<Compound<'a, W>, Error> {
        write_map_len(self.0, len)?;
        Ok(Compound(self.0))
    }

    /// `{variant: {field: value...}}`, as rmp-serde writes it with named structs.
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Compound<'a, W>, Error> {
        write_map_len(self.0, 1)?;
        write_str(self.0, variant)?;
        write_map_len(self.0, len)?;
        Ok(Compound(self.0))
    }
}

/// The fields of a tuple, tuple struct, struct or enum variant, whose length is always known and
/// whose header is already written.
struct Compound<'a, W>(&'a mut Named<W>);

impl<W: Write> ser::SerializeTuple for Compound<'_, W> {
    type Ok = ();
    type Error = Error;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        value.serialize(GoSerializer(&mut *self.0))
    }

    fn end(self) -> Result<(), Error> {
        Ok(())
    }
}

impl<W: Write> ser::SerializeTupleStruct for Compound<'_, W> {
    type Ok = ();
    type Error = Error;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        value.serialize(GoSerializer(&mut *self.0))
    }

    fn end(self) -> Result<(), Error> {
        Ok(())
    }
}

impl<W: Write> ser::SerializeTupleVariant for Compound<'_, W> {
    type Ok = ();
    type Error = Error;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        value.serialize(GoSerializer(&mut *self.0))
    }

    fn end(self) -> Result<(), Error> {
        Ok(())
    }
}

impl<W: Write> ser::SerializeStruct for Compound<'_, W> {
    type Ok = ();
    type Error = Error;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        write_str(self.0, key)?;
        value.serialize(GoSerializer(&mut *self.0))
    }

    fn end(self) -> Result<(), Error> {
        Ok(())
    }
}

impl<W: Write> ser::SerializeStructVariant for Compound<'_, W> {
    type Ok = ();
    type Error = Error;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        write_str(self.0, key)?;
        value.serialize(GoSerializer(&mut *self.0))
    }

    fn end(self) -> Result<(), Error> {
        Ok(())
    }
}

/// The elements of a sequence or the entries of a map.
///
/// With a known length the header is already written and elements go straight to the writer.
/// Otherwise they are encoded into `pending` and counted, and `end` writes the header, then them.
struct Elements<'a, W> {
    se: &'a mut Named<W>,
    pending: Option<Pending>,
    /// Writes the array or map header for a count of elements or entries.
    write_len: fn(&mut Named<W>, usize) -> Result<(), Error>,
}

/// Elements or entries encoded ahead of their header, and how many.
struct Pending {
    se: Named<Vec<u8>>,
    count: usize,
}

impl<'a, W: Write> Elements<'a, W> {
    fn open(
        se: &'a mut Named<W>,
        len: Option<usize>,
        write_len: fn(&mut Named<W>, usize) -> Result<(), Error>,
    ) -> Result<Self, Error> {
        let pending = match len {
            Some(len) => {
                write_len(se, len)?;
                None
            }
            None => Some(Pending {
                se: rmp_serde::Serializer::new(Vec::new()).with_struct_map(),
                count: 0,
            }),
        };
        Ok(Elements {
            se,
            pending,
            write_len,
        })
    }

    /// Encodes one value where it belongs; `counts` says whether it starts an element or entry.
    fn push<T: Serialize + ?Sized>(&mut self, value: &T, counts: bool) -> Result<(), Error> {
        match &mut self.pending {
            None => value.serialize(GoSerializer(&mut *self.se)),
            Some(pending) => {
                pending.count += usize::from(counts);
                value.serialize(GoSerializer(&mut pending.se))
            }
        }
    }

    fn finish(self) -> Result<(), Error> {
        if let Some(pending) = self.pending {
            (self.write_len)(self.se, pending.count)?;
            self.se
                .get_mut()
                .write_all(pending.se.get_ref())
                .map_err(write_error)?;
        }
        Ok(())
    }
}

impl<W: Write> ser::SerializeSeq for Elements<'_, W> {
    type Ok = ();
    type Error = Error;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.push(value, true)
    }

    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

impl<W: Write> ser::SerializeMap for Elements<'_, W> {
    type Ok = ();
    type Error = Error;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        self.push(key, true)
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.push(value, false)
    }

    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::DeserializeOwned;
    use serde::Deserialize;
    use std::collections::BTreeMap;
    use std::fmt::Debug;

    fn go(value: &(impl Serialize + ?Sized)) -> Vec<u8> {
        let mut out = Vec::new();
        to_writer_go(&mut out, value).unwrap();
        out
    }

    /// Encodes, checks the bytes, and decodes them back with rmp-serde to the same value.
    #[track_caller]
    fn check<T: Serialize + DeserializeOwned + PartialEq + Debug>(value: T, expected: &[u8]) {
        let bytes = go(&value);
        assert_eq!(hex(&bytes), hex(expected), "{value:?}");
        let back: T = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(back, value);
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// `marker` followed by `be` (big-endian bytes).
    fn fixed(marker: u8, be: &[u8]) -> Vec<u8> {
        let mut out = vec![marker];
        out.extend_from_slice(be);
        out
    }

    /// A msgpack fixstr.
    fn s(text: &str) -> Vec<u8> {
        assert!(text.len() < 32);
        let mut out = vec![0xa0 | text.len() as u8];
        out.extend_from_slice(text.as_bytes());
        out
    }

    /// Writes its slice with `serialize_bytes`, as `serde_bytes` does (Go's `[]byte`).
    struct Bin<'a>(&'a [u8]);

    impl Serialize for Bin<'_> {
        fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(self.0)
        }
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Reply {
        #[serde(rename = "C")]
        c: i64,
    }

    #[test]
    fn arith_reply_is_gos_bytes() {
        check(
            Reply { c: 200 },
            &[0x81, 0xa1, b'C', 0xd3, 0, 0, 0, 0, 0, 0, 0, 0xc8],
        );
        // rmp-serde alone writes the compact form.
        let compact = rmp_serde::to_vec_named(&Reply { c: 200 }).unwrap();
        assert_eq!(compact, [0x81, 0xa1, b'C', 0xcc, 0xc8]);
    }

    #[test]
    fn every_integer_width_is_fixed() {
        macro_rules! widths {
            ($($ty:ty => $marker:expr),* $(,)?) => {$(
                for v in [<$ty>::MIN, <$ty>::MIN / 2, 0, 1, 5, 127, <$ty>::MAX / 2, <$ty>::MAX] {
                    check(v, &fixed($marker, &v.to_be_bytes()));
                }
            )*};
        }
        widths!(
            i8 => 0xd0, i16 => 0xd1, i32 => 0xd2, i64 => 0xd3,
            u8 => 0xcc, u16 => 0xcd, u32 => 0xce, u64 => 0xcf,
        );
        for v in [-1i8, -32, -33, -128] {
            check(v, &fixed(0xd0, &v.to_be_bytes()));
        }
        check(
            -1i64,
            &[0xd3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
        );
        check(i64::MIN, &[0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0]);
        check(-2i32, &[0xd2, 0xff, 0xff, 0xff, 0xfe]);
        check(-300i16, &[0xd1, 0xfe, 0xd4]);
        check(
            u64::MAX,
            &[0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
        );
        check(65535u16, &[0xcd, 0xff, 0xff]);
        check(0u32, &[0xce, 0, 0, 0, 0]);
    }

    #[test]
    fn other_scalars_are_rmp_serdes() {
        check(1.5f32, &fixed(0xca, &1.5f32.to_be_bytes()));
        check(-0.25f64, &fixed(0xcb, &(-0.25f64).to_be_bytes()));
        check(true, &[0xc3]);
        check(String::from("hi"), &s("hi"));
        check('é', &[0xa2, 0xc3, 0xa9]);
        check((), &[0xc0]);
        check(None::<i64>, &[0xc0]);
        check(Some(7i64), &fixed(0xd3, &7i64.to_be_bytes()));
        assert_eq!(go(&Bin(b"ab")), [0xc4, 2, b'a', b'b']);
        assert_eq!(go(&Bin(b"")), [0xc4, 0]);
        // A Vec<u8> is a sequence to serde, not Go's []byte.
        check(vec![1u8, 2], &[0x92, 0xcc, 1, 0xcc, 2]);
        let long = "x".repeat(40);
        let mut expected = vec![0xd9, 40];
        expected.extend_from_slice(long.as_bytes());
        check(long, &expected);
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Point {
        #[serde(rename = "X")]
        x: i32,
        #[serde(rename = "Y")]
        y: u16,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Shape {
        #[serde(rename = "Name")]
        name: String,
        #[serde(rename = "Points")]
        points: Vec<Point>,
        #[serde(rename = "Weight")]
        weight: Option<i64>,
        #[serde(rename = "Tags")]
        tags: BTreeMap<String, u8>,
        #[serde(rename = "Origin")]
        origin: Point,
    }

    fn point(x: i32, y: u16) -> Vec<u8> {
        [
            &[0x82][..],
            &s("X"),
            &fixed(0xd2, &x.to_be_bytes()),
            &s("Y"),
            &fixed(0xcd, &y.to_be_bytes()),
        ]
        .concat()
    }

    #[test]
    fn nested_structs_sequences_options_and_maps() {
        let shape = Shape {
            name: "tri".into(),
            points: vec![Point { x: 1, y: 2 }, Point { x: -3, y: 400 }],
            weight: Some(-9),
            tags: BTreeMap::from([("a".into(), 7), ("b".into(), 255)]),
            origin: Point { x: 0, y: 0 },
        };
        let expected = [
            &[0x85][..],
            &s("Name"),
            &s("tri"),
            &s("Points"),
            &[0x92],
            &point(1, 2),
            &point(-3, 400),
            &s("Weight"),
            &fixed(0xd3, &(-9i64).to_be_bytes()),
            &s("Tags"),
            &[0x82],
            &s("a"),
            &[0xcc, 7],
            &s("b"),
            &[0xcc, 255],
            &s("Origin"),
            &point(0, 0),
        ]
        .concat();
        check(shape, &expected);

        let empty = Shape {
            name: String::new(),
            points: Vec::new(),
            weight: None,
            tags: BTreeMap::new(),
            origin: Point { x: 5, y: 6 },
        };
        let expected = [
            &[0x85][..],
            &s("Name"),
            &[0xa0],
            &s("Points"),
            &[0x90],
            &s("Weight"),
            &[0xc0],
            &s("Tags"),
            &[0x80],
            &s("Origin"),
            &point(5, 6),
        ]
        .concat();
        check(empty, &expected);
    }

    #[test]
    fn integer_map_keys_tuples_and_newtypes_are_fixed() {
        check(
            BTreeMap::from([(1u32, -1i8), (70000, 2)]),
            &[
                0x82, 0xce, 0, 0, 0, 1, 0xd0, 0xff, 0xce, 0, 1, 0x11, 0x70, 0xd0, 2,
            ],
        );
        check((3u8, -4i16), &[0x92, 0xcc, 3, 0xd1, 0xff, 0xfc]);
        check(
            [9u64; 2],
            &[
                &[0x92][..],
                &fixed(0xcf, &[0, 0, 0, 0, 0, 0, 0, 9]),
                &fixed(0xcf, &[0, 0, 0, 0, 0, 0, 0, 9]),
            ]
            .concat(),
        );

        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct Meters(u32);
        check(Meters(3), &[0xce, 0, 0, 0, 3]);

        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct Pair(i64, u8);
        check(
            Pair(-1, 1),
            &[&[0x92][..], &fixed(0xd3, &[0xff; 8]), &[0xcc, 1]].concat(),
        );
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Op {
        Stop,
        Move(i16),
        Line(u8, i32),
        Set {
            #[serde(rename = "K")]
            k: u64,
        },
    }

    #[test]
    fn enum_variants_keep_rmp_serdes_shape_with_fixed_integers() {
        check(Op::Stop, &s("Stop"));
        check(
            Op::Move(5),
            &[&[0x81][..], &s("Move"), &[0xd1, 0, 5]].concat(),
        );
        check(
            Op::Line(1, -1),
            &[
                &[0x81][..],
                &s("Line"),
                &[0x92, 0xcc, 1, 0xd2, 0xff, 0xff, 0xff, 0xff],
            ]
            .concat(),
        );
        check(
            Op::Set { k: 2 },
            &[
                &[0x81][..],
                &s("Set"),
                &[0x81],
                &s("K"),
                &fixed(0xcf, &2u64.to_be_bytes()),
            ]
            .concat(),
        );
        for op in [
            Op::Stop,
            Op::Move(-7),
            Op::Line(0, i32::MIN),
            Op::Set { k: u64::MAX },
        ] {
            let rmp = rmp_serde::to_vec_named(&op).unwrap();
            let back: Op = rmp_serde::from_slice(&go(&op)).unwrap();
            assert_eq!(back, op, "rmp-serde writes {rmp:02x?}");
        }
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Flattened {
        #[serde(rename = "A")]
        a: i64,
        #[serde(flatten)]
        point: Point,
        #[serde(rename = "L")]
        list: Counted,
    }

    /// A sequence written without a length up front, like an iterator of unknown size.
    #[derive(Debug, PartialEq, Deserialize)]
    struct Counted(Vec<Vec<u16>>);

    impl Serialize for Counted {
        fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use ser::SerializeSeq;
            let mut seq = s.serialize_seq(None)?;
            for inner in &self.0 {
                seq.serialize_element(&Uncounted(inner))?;
            }
            seq.end()
        }
    }

    struct Uncounted<'a>(&'a [u16]);

    impl Serialize for Uncounted<'_> {
        fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_seq(self.0.iter().filter(|_| true))
        }
    }

    #[test]
    fn unknown_lengths_are_counted_and_nested_integers_fixed() {
        let value = Flattened {
            a: 1,
            point: Point { x: 2, y: 3 },
            list: Counted(vec![vec![4, 5], vec![]]),
        };
        let expected = [
            &[0x84][..],
            &s("A"),
            &fixed(0xd3, &1i64.to_be_bytes()),
            &s("X"),
            &fixed(0xd2, &2i32.to_be_bytes()),
            &s("Y"),
            &[0xcd, 0, 3],
            &s("L"),
            &[0x92, 0x92, 0xcd, 0, 4, 0xcd, 0, 5, 0x90],
        ]
        .concat();
        check(value, &expected);

        let many: Vec<u16> = (0..20).collect();
        let bytes = go(&Uncounted(&many));
        assert_eq!(
            &bytes[..3],
            &[0xdc, 0, 20],
            "array16 header for 20 elements"
        );
        assert_eq!(bytes.len(), 3 + 20 * 3);
        assert_eq!(rmp_serde::from_slice::<Vec<u16>>(&bytes).unwrap(), many);
    }

    #[test]
    fn extension_types_are_rmp_serdes() {
        struct Ext;
        impl Serialize for Ext {
            fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_newtype_struct(rmp_serde::MSGPACK_EXT_STRUCT_NAME, &(5i8, Bin(b"ab")))
            }
        }
        assert_eq!(go(&Ext), rmp_serde::to_vec_named(&Ext).unwrap());
        assert_eq!(go(&Ext), [0xd5, 5, b'a', b'b']);
    }

    fn unhex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Bytes written by Go's vmihailenco/msgpack v5.4.1 with default options for the Go types in
    /// the comments (maps of one entry, as Go's map order is random).
    #[test]
    fn matches_bytes_recorded_from_go() {
        // type Reply struct{ C int64 }
        check(Reply { c: 200 }, &unhex("81a143d300000000000000c8"));

        // type Args struct{ A, B int64 }
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct Args {
            #[serde(rename = "A")]
            a: i64,
            #[serde(rename = "B")]
            b: i64,
        }
        check(
            Args { a: 1, b: 2 },
            &unhex("82a141d30000000000000001a142d30000000000000002"),
        );

        // type Shape struct { Name string; Points []Point; Weight *int64;
        //     Tags map[string]uint8; Origin Point }, type Point struct { X int32; Y uint16 }
        let shape = Shape {
            name: "tri".into(),
            points: vec![Point { x: 1, y: 2 }, Point { x: -3, y: 400 }],
            weight: Some(-9),
            tags: BTreeMap::from([("b".into(), 255)]),
            origin: Point { x: 0, y: 0 },
        };
        check(
            shape,
            &unhex(concat!(
                "85a44e616d65a3747269a6506f696e74739282a158d200000001a159cd000282a158d2fffffffd",
                "a159cd0190a6576569676874d3fffffffffffffff7a45461677381a162ccffa64f726967696e82",
                "a158d200000000a159cd0000",
            )),
        );
        let empty = Shape {
            name: String::new(),
            points: Vec::new(),
            weight: None,
            tags: BTreeMap::new(),
            origin: Point { x: 5, y: 6 },
        };
        check(
            empty,
            &unhex(concat!(
                "85a44e616d65a0a6506f696e747390a6576569676874c0a45461677380a64f726967696e82a158",
                "d200000005a159cd0006",
            )),
        );

        // type Flattened struct { A int64; Point; L [][]uint16 } (Go inlines the embedded Point)
        let flattened = Flattened {
            a: 1,
            point: Point { x: 2, y: 3 },
            list: Counted(vec![vec![4, 5], vec![]]),
        };
        check(
            flattened,
            &unhex("84a141d30000000000000001a158d200000002a159cd0003a14c9292cd0004cd000590"),
        );

        // type Mixed struct { I int64; U uint64; I8 int8; U8 uint8; F32 float32; F64 float64;
        //     B bool; S string; Bin []byte; Nil *int32 }
        #[derive(Serialize)]
        #[allow(non_snake_case)]
        struct Mixed<'a> {
            I: i64,
            U: u64,
            I8: i8,
            U8: u8,
            F32: f32,
            F64: f64,
            B: bool,
            S: &'a str,
            Bin: Bin<'a>,
            Nil: Option<i32>,
        }
        let mixed = Mixed {
            I: -5,
            U: 5,
            I8: i8::MIN,
            U8: u8::MAX,
            F32: 1.5,
            F64: -0.25,
            B: true,
            S: "hi",
            Bin: Bin(b"ab"),
            Nil: None,
        };
        assert_eq!(
            hex(&go(&mixed)),
            concat!(
                "8aa149d3fffffffffffffffba155cf0000000000000005a24938d080a25538ccffa3463332ca3f",
                "c00000a3463634cbbfd0000000000000a142c3a153a26869a342696ec4026162a34e696cc0",
            )
        );

        // []uint16{0, ..., 19} and map[uint32]int8{1: -1}
        check(
            (0..20).collect::<Vec<u16>>(),
            &unhex(concat!(
                "dc0014cd0000cd0001cd0002cd0003cd0004cd0005cd0006cd0007cd0008cd0009cd000acd000b",
                "cd000ccd000dcd000ecd000fcd0010cd0011cd0012cd0013",
            )),
        );
        check(BTreeMap::from([(1u32, -1i8)]), &unhex("81ce00000001d0ff"));
    }

    #[test]
    fn writes_through_a_bytes_mut_writer() {
        use bytes::BufMut;
        let mut out = bytes::BytesMut::new();
        to_writer_go(&mut (&mut out).writer(), &Reply { c: 200 }).unwrap();
        assert_eq!(
            &out[..],
            [0x81, 0xa1, b'C', 0xd3, 0, 0, 0, 0, 0, 0, 0, 0xc8]
        );
    }

    #[test]
    fn write_errors_are_reported() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::ErrorKind::WriteZero.into())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        assert!(to_writer_go(&mut Full, &5i64).is_err());
        assert!(to_writer_go(&mut Full, &Reply { c: 1 }).is_err());
    }
}
