//! Skips one term without converting it, iteratively, so any nesting depth
//! is safe. Used to step over an element that could not be converted and
//! still read the rest of the message.

use super::{tag, Cursor};
use crate::error::EtfError;

/// Advances `c` past exactly one complete term.
pub fn skip_term(c: &mut Cursor<'_>) -> Result<(), EtfError> {
    // Terms still to skip; containers add their element counts.
    let mut todo: u64 = 1;
    while todo > 0 {
        todo -= 1;
        let at = c.pos;
        let t = c.u8()?;
        match t {
            tag::SMALL_INTEGER => drop(c.take(1)?),
            tag::INTEGER => drop(c.take(4)?),
            tag::NEW_FLOAT => drop(c.take(8)?),
            tag::FLOAT => drop(c.take(31)?),
            tag::ATOM | tag::ATOM_UTF8 | tag::SMALL_ATOM | tag::SMALL_ATOM_UTF8 => {
                c.atom_body(t, at)?;
            }
            tag::SMALL_TUPLE => todo += u64::from(c.u8()?),
            tag::LARGE_TUPLE => todo += u64::from(c.u32()?),
            tag::MAP => todo += 2 * u64::from(c.u32()?),
            tag::NIL => {}
            tag::STRING => {
                let n = c.u16()? as usize;
                c.take(n)?;
            }
            tag::LIST => todo += u64::from(c.u32()?) + 1,
            tag::BINARY => {
                let n = c.u32()? as usize;
                c.take(n)?;
            }
            tag::BIT_BINARY => {
                let n = c.u32()? as usize;
                c.take(n + 1)?;
            }
            tag::SMALL_BIG => {
                let n = c.u8()? as usize;
                c.take(n + 1)?;
            }
            tag::LARGE_BIG => {
                let n = c.u32()? as usize;
                c.take(n + 1)?;
            }
            tag::NEW_PID => {
                c.atom()?;
                c.take(12)?;
            }
            tag::PID => {
                c.atom()?;
                c.take(9)?;
            }
            tag::NEWER_REFERENCE => {
                let n = c.u16()? as usize;
                c.atom()?;
                c.take(4 + 4 * n)?;
            }
            tag::NEW_REFERENCE => {
                let n = c.u16()? as usize;
                c.atom()?;
                c.take(1 + 4 * n)?;
            }
            tag::REFERENCE => {
                c.atom()?;
                c.take(5)?;
            }
            tag::PORT => {
                c.atom()?;
                c.take(5)?;
            }
            tag::NEW_PORT => {
                c.atom()?;
                c.take(8)?;
            }
            tag::V4_PORT => {
                c.atom()?;
                c.take(12)?;
            }
            tag::EXPORT => todo += 3,
            tag::NEW_FUN => {
                // The size field counts itself.
                let size = c.u32()? as usize;
                if size < 4 {
                    return Err(EtfError::Malformed("fun with a size under 4".into()));
                }
                c.take(size - 4)?;
            }
            tag => return Err(EtfError::UnknownTag { tag, at }),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_a_deeply_nested_list_without_recursion() {
        // [[[...[]...]]] one million levels deep.
        let depth = 1_000_000;
        let mut bytes = Vec::new();
        for _ in 0..depth {
            bytes.extend_from_slice(&[tag::LIST, 0, 0, 0, 1]);
        }
        bytes.extend(std::iter::repeat_n(tag::NIL, depth + 1));
        let mut c = Cursor::new(&bytes);
        skip_term(&mut c).unwrap();
        assert_eq!(c.remaining(), 0);
    }

    #[test]
    fn a_huge_announced_count_is_truncated_not_allocated() {
        let bytes = [tag::LARGE_TUPLE, 0xff, 0xff, 0xff, 0xff, tag::NIL];
        let err = skip_term(&mut Cursor::new(&bytes)).unwrap_err();
        assert!(matches!(err, EtfError::Truncated { .. }));
    }

    #[test]
    fn an_unknown_tag_is_reported_with_its_offset() {
        let bytes = [tag::SMALL_TUPLE, 2, tag::NIL, 250];
        let err = skip_term(&mut Cursor::new(&bytes)).unwrap_err();
        assert!(
            matches!(err, EtfError::UnknownTag { tag: 250, at: 3 }),
            "{err:?}"
        );
    }
}
