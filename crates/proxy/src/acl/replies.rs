//! The ACL subcommands the proxy answers itself: `ACL WHOAMI` (the client's user) and
//! `ACL CAT [category]` (from the command table, so the categories are the cluster's).

use resp::write;

use super::{CATEGORIES, Categories};
use crate::commands::CommandTable;

/// `ACL WHOAMI`'s reply.
pub fn whoami(out: &mut Vec<u8>, user_name: &str) {
    write::bulk(out, user_name.as_bytes());
}

/// `ACL CAT` (`category` `None`) or `ACL CAT category`; `Err` is the error line.
pub fn cat(out: &mut Vec<u8>, table: &CommandTable, category: Option<&[u8]>) -> Result<(), String> {
    let Some(category) = category else {
        write::array_len(out, CATEGORIES.len());
        for name in CATEGORIES {
            write::bulk(out, name.as_bytes());
        }
        return Ok(());
    };
    let bit = Categories::bit(category)
        .ok_or_else(|| format!("ERR Unknown category '{}'", String::from_utf8_lossy(category)))?;
    let mut names: Vec<&str> =
        table.iter().filter(|c| c.acl.categories.contains(bit)).map(|c| c.name.as_str()).collect();
    names.sort_unstable();
    write::array_len(out, names.len());
    for name in names {
        write::bulk(out, name.as_bytes());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use resp::{Limits, Value, parse_value};

    fn parse(bytes: &[u8]) -> Value {
        parse_value(bytes, &Limits::default()).unwrap().unwrap().0
    }

    #[test]
    fn cat_lists_categories_and_their_commands() {
        let table = CommandTable::builtin();
        let mut out = Vec::new();
        cat(&mut out, &table, None).unwrap();
        let all = parse(&out);
        assert_eq!(all.as_list().unwrap().len(), 21);
        assert_eq!(all.as_list().unwrap()[0], Value::Bulk(b"keyspace".to_vec()));
        out.clear();
        cat(&mut out, &table, Some(b"DANGEROUS")).unwrap();
        let names: Vec<Vec<u8>> =
            parse(&out).as_list().unwrap().iter().map(|v| v.as_bytes().unwrap().to_vec()).collect();
        assert!(names.contains(&b"flushall".to_vec()) && names.contains(&b"acl|setuser".to_vec()));
        assert!(!names.contains(&b"get".to_vec()));
        assert_eq!(
            cat(&mut out, &table, Some(b"nosuch")),
            Err("ERR Unknown category 'nosuch'".into())
        );
    }

    #[test]
    fn whoami_is_the_name() {
        let mut out = Vec::new();
        whoami(&mut out, "alice");
        assert_eq!(out, b"$5\r\nalice\r\n");
    }
}
