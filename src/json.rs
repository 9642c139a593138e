//! JSON as chainsniff writes it: serde_json's pretty layout, with bidirectional overrides
//! escaped, starting at any depth, so that a value written on its own (a handshake kept in a
//! [`crate::spill::Spill`]) reads exactly as it does inside the whole report.

use std::io::Write;

use serde::Serialize;

/// JSON keeps names exact but escapes bidirectional overrides (`\u202e`), as serde_json escapes
/// control characters, so that the file reads true in a terminal or an editor. They can only
/// occur inside strings, where the escape means the same character.
pub struct BidiEscaping<F>(pub F);

/// Whether `c` is a Unicode bidirectional control (escaped so that a name cannot reorder a line).
pub fn is_bidi(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Formatter methods that only pass the call on to the wrapped formatter.
macro_rules! forward {
    ($($name:ident),*) => {$(
        fn $name<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
            self.0.$name(w)
        }
    )*};
    (first: $($name:ident),*) => {$(
        fn $name<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> std::io::Result<()> {
            self.0.$name(w, first)
        }
    )*};
}

impl<F: serde_json::ser::Formatter> serde_json::ser::Formatter for BidiEscaping<F> {
    fn write_string_fragment<W: ?Sized + Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        // Every bidi control is encoded as E2 80 xx or E2 81 xx: most strings have no E2 byte.
        if !fragment.as_bytes().contains(&0xe2) {
            return w.write_all(fragment.as_bytes());
        }
        let mut rest = fragment;
        while let Some((at, c)) = rest.char_indices().find(|(_, c)| is_bidi(*c)) {
            w.write_all(&rest.as_bytes()[..at])?;
            write!(w, "\\u{:04x}", c as u32)?;
            rest = &rest[at + c.len_utf8()..];
        }
        w.write_all(rest.as_bytes())
    }
    // The layout (indentation, commas) is the wrapped formatter's.
    forward!(
        begin_array,
        end_array,
        end_array_value,
        begin_object,
        end_object
    );
    forward!(begin_object_value, end_object_value);
    forward!(first: begin_array_value, begin_object_key);
}

/// serde_json's `PrettyFormatter` (two spaces per level), starting `depth` levels in.
pub struct Pretty {
    depth: usize,
    has_value: bool,
}

impl Pretty {
    /// A codec that writes JSON indented as at `depth`.
    pub fn at(depth: usize) -> Self {
        Pretty {
            depth,
            has_value: false,
        }
    }

    fn newline<W: ?Sized + Write>(&self, w: &mut W, first: bool) -> std::io::Result<()> {
        w.write_all(if first { b"\n" } else { b",\n" })?;
        indent(w, self.depth)
    }

    fn close<W: ?Sized + Write>(&mut self, w: &mut W, bracket: &[u8]) -> std::io::Result<()> {
        self.depth -= 1;
        if self.has_value {
            w.write_all(b"\n")?;
            indent(w, self.depth)?;
        }
        w.write_all(bracket)
    }
}

/// Writes the indentation of `depth`.
pub fn indent<W: ?Sized + Write>(w: &mut W, depth: usize) -> std::io::Result<()> {
    const SPACES: &[u8] = &[b' '; 64];
    let mut n = depth * 2;
    while n > 0 {
        let k = n.min(SPACES.len());
        w.write_all(&SPACES[..k])?;
        n -= k;
    }
    Ok(())
}

impl serde_json::ser::Formatter for Pretty {
    fn begin_array<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.depth += 1;
        self.has_value = false;
        w.write_all(b"[")
    }
    fn end_array<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.close(w, b"]")
    }
    fn begin_array_value<W: ?Sized + Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.newline(w, first)
    }
    fn end_array_value<W: ?Sized + Write>(&mut self, _: &mut W) -> std::io::Result<()> {
        self.has_value = true;
        Ok(())
    }
    fn begin_object<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.depth += 1;
        self.has_value = false;
        w.write_all(b"{")
    }
    fn end_object<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.close(w, b"}")
    }
    fn begin_object_key<W: ?Sized + Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.newline(w, first)
    }
    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        w.write_all(b": ")
    }
    fn end_object_value<W: ?Sized + Write>(&mut self, _: &mut W) -> std::io::Result<()> {
        self.has_value = true;
        Ok(())
    }
}

/// Writes `value` as pretty JSON whose first line continues a line `depth` levels in.
pub fn write_pretty<W: Write>(
    value: &impl Serialize,
    depth: usize,
    out: &mut W,
) -> std::io::Result<()> {
    let mut ser = serde_json::Serializer::with_formatter(out, BidiEscaping(Pretty::at(depth)));
    value.serialize(&mut ser).map_err(std::io::Error::other)
}

/// One compact JSON value, bidi overrides escaped.
pub fn compact(v: &impl Serialize) -> String {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(
        &mut out,
        BidiEscaping(serde_json::ser::CompactFormatter),
    );
    if let Err(e) = v.serialize(&mut ser) {
        return format!("{{\"error\":\"{e}\"}}");
    }
    String::from_utf8(out).unwrap_or_default()
}

/// Pretty JSON `DEPTH` levels in, as a [`crate::spill::Codec`]: the stored bytes are what the
/// report prints, so a report can copy them out without decoding them.
pub struct PrettyAt<const DEPTH: usize>;

impl<T: Serialize + serde::de::DeserializeOwned, const DEPTH: usize> crate::spill::Codec<T>
    for PrettyAt<DEPTH>
{
    fn encode(value: &T, out: &mut Vec<u8>) -> std::io::Result<()> {
        write_pretty(value, DEPTH, out)
    }
    fn decode(bytes: &[u8]) -> std::io::Result<T> {
        serde_json::from_slice(bytes).map_err(std::io::Error::other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pretty_at_depth_zero_is_serde_jsons_layout() {
        let v = serde_json::json!({"a": [1, {"b": [], "c": {}}, [2, 3]], "d": "x\u{202e}y", "e": {"f": null}});
        let mut ours = Vec::new();
        write_pretty(&v, 0, &mut ours).unwrap();
        let theirs = serde_json::to_string_pretty(&v)
            .unwrap()
            .replace('\u{202e}', "\\u202e");
        assert_eq!(String::from_utf8(ours).unwrap(), theirs);
        // Two levels in: every line after the first is indented four more spaces.
        let mut deep = Vec::new();
        write_pretty(&v, 2, &mut deep).unwrap();
        assert_eq!(
            String::from_utf8(deep).unwrap(),
            theirs.replace('\n', "\n    ")
        );
    }
}
