//! Positions in a partition as the command line writes them: a word
//! (`earliest`, `latest`) or a word with a number (`offset:N`, `time:MS`,
//! `shift:N`). `consume --from` and `group reset-offsets --to` parse them
//! here, as clap value parsers, so that a typo is refused before anything
//! connects, with the accepted forms in the message.

use brook_client::ResetTo;

/// The forms `consume --from` accepts, for its help and errors.
pub(crate) const FROM_FORMS: &str = "earliest, latest, offset:N or time:MS";
/// The forms `group reset-offsets --to` accepts.
pub(crate) const TO_FORMS: &str = "earliest, latest, offset:N, time:MS or shift:N";

/// Parses a `--from` value. A shift is refused: without a committed offset
/// there is nothing to shift from.
pub(crate) fn parse_from(s: &str) -> Result<ResetTo, String> {
    match parse(s) {
        Some(Err(e)) => Err(e),
        Some(Ok(ResetTo::ShiftBy(_))) | None => Err(format!("{s:?} is not {FROM_FORMS}")),
        Some(Ok(to)) => Ok(to),
    }
}

/// Parses a `--to` value.
pub(crate) fn parse_to(s: &str) -> Result<ResetTo, String> {
    parse(s).unwrap_or_else(|| Err(format!("{s:?} is not {TO_FORMS}")))
}

/// `None` when `s` is none of the forms; an error when the form is right
/// but its number is not, so that the message can say which number.
fn parse(s: &str) -> Option<Result<ResetTo, String>> {
    Some(match s {
        "earliest" => Ok(ResetTo::Earliest),
        "latest" => Ok(ResetTo::Latest),
        _ => match s.split_once(':')? {
            ("offset", n) => number(n, "offset:N").map(ResetTo::Offset),
            ("time", n) => number(n, "time:MS").map(ResetTo::Timestamp),
            ("shift", n) => number(n, "shift:N").map(ResetTo::ShiftBy),
            _ => return None,
        },
    })
}

fn number<T: std::str::FromStr>(n: &str, form: &str) -> Result<T, String> {
    n.parse()
        .map_err(|_| format!("{form} needs a number, not {n:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_takes_a_word_or_an_offset_or_a_time() {
        assert_eq!(parse_from("earliest"), Ok(ResetTo::Earliest));
        assert_eq!(parse_from("latest"), Ok(ResetTo::Latest));
        assert_eq!(parse_from("offset:42"), Ok(ResetTo::Offset(42)));
        assert_eq!(
            parse_from("time:1767225600000"),
            Ok(ResetTo::Timestamp(1_767_225_600_000))
        );
        for bad in ["shift:-5", "first", "offsets:1", ""] {
            let err = parse_from(bad).unwrap_err();
            assert!(
                err.contains(&format!("{bad:?} is not {FROM_FORMS}")),
                "{err}"
            );
        }
        for (bad, form) in [
            ("offset:", "offset:N"),
            ("offset:-1", "offset:N"),
            ("time:soon", "time:MS"),
        ] {
            let err = parse_from(bad).unwrap_err();
            assert!(err.contains(form), "{bad}: {err}");
        }
    }

    #[test]
    fn to_also_takes_a_shift_either_way() {
        assert_eq!(parse_to("shift:-100"), Ok(ResetTo::ShiftBy(-100)));
        assert_eq!(parse_to("shift:7"), Ok(ResetTo::ShiftBy(7)));
        assert_eq!(parse_to("offset:0"), Ok(ResetTo::Offset(0)));
        assert!(parse_to("back:5").unwrap_err().contains(TO_FORMS));
        assert!(parse_to("shift:x").unwrap_err().contains("shift:N"));
    }
}
