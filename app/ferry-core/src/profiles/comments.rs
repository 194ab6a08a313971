//! Keeping a person's comments when Ferry rewrites the file: the new text is produced from the
//! data model, then the comments of the old file are carried over to the same keys, tables and
//! `[[profile]]` entries (matched by `name`; tunnels by `alias` and `target`, else position).

use toml_edit::{ArrayOfTables, Decor, DocumentMut, Item, Table};

/// `new` with the comments of `old` put back where they were; `None` when either does not parse.
pub fn keep_comments(old: &str, new: &str) -> Option<String> {
    let old: DocumentMut = old.parse().ok()?;
    let mut new: DocumentMut = new.parse().ok()?;
    copy_table(old.as_table(), new.as_table_mut());
    if let Some(trailing) = old.trailing().as_str().filter(|t| t.contains('#')) {
        new.set_trailing(trailing.to_string());
    }
    Some(new.to_string())
}

/// Copies the prefix and suffix of `old` when they hold a comment (whitespace alone is left
/// to the new layout).
fn copy_decor(old: &Decor, new: &mut Decor) {
    if let Some(prefix) = old
        .prefix()
        .and_then(|p| p.as_str())
        .filter(|p| p.contains('#'))
    {
        new.set_prefix(prefix.to_string());
    }
    if let Some(suffix) = old
        .suffix()
        .and_then(|s| s.as_str())
        .filter(|s| s.contains('#'))
    {
        new.set_suffix(suffix.to_string());
    }
}

fn copy_table(old: &Table, new: &mut Table) {
    copy_decor(old.decor(), new.decor_mut());
    for (mut key, item) in new.iter_mut() {
        let Some((old_key, old_item)) = old.get_key_value(key.get()) else {
            continue;
        };
        copy_decor(old_key.leaf_decor(), key.leaf_decor_mut());
        copy_item(old_item, item);
    }
}

fn copy_item(old: &Item, new: &mut Item) {
    match (old, new) {
        (Item::Value(o), Item::Value(n)) => copy_decor(o.decor(), n.decor_mut()),
        (Item::Table(o), Item::Table(n)) => copy_table(o, n),
        (Item::ArrayOfTables(o), Item::ArrayOfTables(n)) => copy_entries(o, n),
        _ => {}
    }
}

fn copy_entries(old: &ArrayOfTables, new: &mut ArrayOfTables) {
    for (i, table) in new.iter_mut().enumerate() {
        let identity = identity_of(table);
        let matched = match &identity {
            Some(id) => old.iter().find(|t| identity_of(t).as_ref() == Some(id)),
            None => old.get(i),
        };
        if let Some(old_table) = matched {
            copy_table(old_table, table);
        }
    }
}

/// What identifies an entry: a profile's or cluster's `name`, a tunnel's `alias` + `target`.
fn identity_of(table: &Table) -> Option<(String, String)> {
    let text = |k: &str| table.get(k).and_then(Item::as_str).map(str::to_string);
    if let Some(name) = text("name") {
        return Some((name, String::new()));
    }
    match (text("alias"), text("target")) {
        (None, None) => None,
        (alias, target) => Some((alias.unwrap_or_default(), target.unwrap_or_default())),
    }
}
