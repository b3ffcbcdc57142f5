//! `throome-cli create-cluster`: a new cluster file from a commented template.

use std::path::{Path, PathBuf};

const TEMPLATE: &str = include_str!("cluster_template.yaml");

#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("cannot derive a cluster id from `{0}`: give one with --id")]
    NoId(String),
    #[error("invalid cluster id `{0}`: use 1-63 letters, digits, `-` or `_`")]
    BadId(String),
    #[error("{} already exists; not overwriting it", .0.display())]
    Exists(PathBuf),
    #[error("cannot write {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// `"My App!"` -> `"my-app"`.
pub fn derive_id(name: &str) -> String {
    let mut id = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            id.push(c.to_ascii_lowercase());
        } else if !id.ends_with('-') && !id.is_empty() {
            id.push('-');
        }
    }
    let id = id.trim_end_matches('-');
    id.chars()
        .take(63)
        .collect::<String>()
        .trim_end_matches('-')
        .to_string()
}

/// Renders the template for `id` and `name`. The result always passes validation.
pub fn render(id: &str, name: &str) -> String {
    let quoted = serde_json::to_string(name).unwrap_or_else(|_| "\"cluster\"".into());
    TEMPLATE.replace("{{id}}", id).replace("{{name}}", &quoted)
}

/// Writes `<clusters_dir>/<id>/config.yaml`, refusing to overwrite; returns the id.
pub fn create(
    clusters_dir: &Path,
    name: &str,
    id: Option<&str>,
) -> Result<(String, PathBuf), CreateError> {
    let id = match id {
        Some(id) => id.to_string(),
        None => derive_id(name),
    };
    if id.is_empty() {
        return Err(CreateError::NoId(name.to_string()));
    }
    let text = render(&id, name);
    if crate::config::parse_cluster(&text).is_err() {
        return Err(CreateError::BadId(id));
    }
    let dir = clusters_dir.join(&id);
    let file = dir.join("config.yaml");
    if dir.exists() {
        return Err(CreateError::Exists(dir));
    }
    let io = |source| CreateError::Io {
        path: file.clone(),
        source,
    };
    std::fs::create_dir_all(&dir).map_err(io)?;
    // create_new: never clobber a file that appeared meanwhile.
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&file)
        .map_err(io)?;
    std::io::Write::write_all(&mut f, text.as_bytes()).map_err(io)?;
    Ok((id, file))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derives_ids_from_names() {
        assert_eq!(derive_id("My Application"), "my-application");
        assert_eq!(derive_id("  Orders / EU-1  "), "orders-eu-1");
        assert_eq!(derive_id("!!!"), "");
    }

    #[test]
    fn template_is_valid_and_quotes_the_name() {
        let text = render("orders", "Orders: \"EU\"");
        let c = crate::config::parse_cluster(&text).expect("template must validate");
        assert_eq!(c.cluster_id.value, "orders");
        assert_eq!(c.name, "Orders: \"EU\"");
    }
}
