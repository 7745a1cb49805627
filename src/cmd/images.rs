//! `rbuild images` (also `rbuild image ls`): the images in the store, with
//! `docker images`' REPOSITORY argument, `--filter` and `--format`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use rbuild_build::local::{self, ImageSummary};
use rbuild_build::time::{now_secs, parse_rfc3339};
use rbuild_cache::Store;
use rbuild_image::manifest::short_id;
use rbuild_image::reference::split_store_name;
use serde_json::json;

use crate::show::{human_since, human_size};
use crate::template::Template;

/// `rbuild images` arguments, as `docker images`'.
#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// Only show image ids (short, as `docker images -q`).
    #[arg(short, long)]
    quiet: bool,

    /// Only images of this repository (`busybox`, or `busybox:1` for one
    /// tag).
    #[arg(value_name = "REPOSITORY[:TAG]")]
    repository: Option<String>,

    /// `dangling=true|false`, `reference=PATTERN` (`*` and `?` globs on
    /// `repo` or `repo:tag`), `label=KEY` or `label=KEY=VALUE`,
    /// `before=IMAGE`, `since=IMAGE`; repeatable, all must hold.
    #[arg(long = "filter", value_name = "KEY=VALUE")]
    filters: Vec<String>,

    /// A Go template per image (`{{.Repository}}`, `{{.Tag}}`, `{{.ID}}`,
    /// `{{.Digest}}`, `{{.CreatedAt}}`, `{{.CreatedSince}}`, `{{.Size}}`,
    /// `{{json .}}`); a `table ` prefix adds a header row.
    #[arg(long, value_name = "TEMPLATE")]
    format: Option<String>,
}

/// One `--filter`.
enum Filter {
    Dangling(bool),
    Reference(String),
    Label(String, Option<String>),
    /// Created before (`true`) or after this time.
    Created {
        before: bool,
        secs: i64,
    },
}

impl Filter {
    fn parse(store: &Store, text: &str) -> anyhow::Result<Self> {
        let (key, value) = text
            .split_once('=')
            .with_context(|| format!("invalid --filter {text:?}: expected KEY=VALUE"))?;
        Ok(match key {
            "dangling" => Filter::Dangling(match value {
                "true" | "1" => true,
                "false" | "0" => false,
                _ => bail!("invalid --filter {text:?}: dangling is true or false"),
            }),
            "reference" => Filter::Reference(value.to_string()),
            "label" => match value.split_once('=') {
                Some((k, v)) => Filter::Label(k.to_string(), Some(v.to_string())),
                None => Filter::Label(value.to_string(), None),
            },
            "before" | "since" => {
                let image = local::inspect(store, value, None)?;
                let secs = image
                    .created
                    .as_deref()
                    .and_then(parse_rfc3339)
                    .with_context(|| format!("--filter {text:?}: {value} has no creation time"))?;
                Filter::Created {
                    before: key == "before",
                    secs,
                }
            }
            _ => bail!(
                "invalid --filter {text:?}: the filters are dangling, reference, label, before and since"
            ),
        })
    }

    fn keeps(&self, image: &ImageSummary) -> bool {
        match self {
            Filter::Dangling(d) => image.name.is_none() == *d,
            Filter::Reference(pattern) => image.name.as_deref().is_some_and(|name| {
                let (repo, tag) = split_store_name(name);
                glob(pattern, repo) || glob(pattern, &format!("{repo}:{tag}"))
            }),
            Filter::Label(k, v) => image
                .labels
                .get(k)
                .is_some_and(|have| v.as_ref().is_none_or(|want| want == have)),
            Filter::Created { before, secs } => {
                let created = image.created.as_deref().and_then(parse_rfc3339);
                created.is_some_and(|c| if *before { c < *secs } else { c > *secs })
            }
        }
    }
}

/// Whether `text` matches `pattern` (`*`: any run of characters, `?`: one).
fn glob(pattern: &str, text: &str) -> bool {
    match pattern.chars().next() {
        None => text.is_empty(),
        Some('*') => (0..=text.len())
            .filter(|&i| text.is_char_boundary(i))
            .any(|i| glob(&pattern[1..], &text[i..])),
        Some(p) => text.chars().next().is_some_and(|t| {
            (p == '?' || p == t) && glob(&pattern[p.len_utf8()..], &text[t.len_utf8()..])
        }),
    }
}

/// Lists the images: repository, tag, image id, created, size.
pub fn run(root: &Path, args: ImagesArgs) -> anyhow::Result<ExitCode> {
    let store = Store::open(root)?;
    let filters = args
        .filters
        .iter()
        .map(|f| Filter::parse(&store, f))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let wanted = args
        .repository
        .as_deref()
        .map(|r| local::store_name(r).map(|_| r))
        .transpose()?;
    let now = now_secs();
    let rows: Vec<serde_json::Value> = local::list(&store)?
        .into_iter()
        .filter(|image| filters.iter().all(|f| f.keeps(image)))
        .filter(|image| wanted.is_none_or(|w| in_repository(image, w)))
        .map(|image| row(&image, now))
        .collect();
    if args.quiet {
        for r in &rows {
            outln!("{}", r["ID"].as_str().unwrap_or_default())?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let default = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}";
    // A PLATFORMS column when a multi-platform image is listed.
    let with_platforms = format!("{default}\t{{{{.Platforms}}}}");
    let default = match rows.iter().any(|r| r["Platforms"] != "") {
        true => with_platforms.as_str(),
        false => default,
    };
    let format = args.format.as_deref().unwrap_or(default);
    let (table, body) = match format.strip_prefix("table") {
        Some(rest) => (true, rest.trim_start()),
        None => (false, format),
    };
    let template = Template::parse(body)?;
    let mut lines = Vec::new();
    if table {
        lines.push(template.render(&json!({
            "Repository": "REPOSITORY", "Tag": "TAG", "ID": "IMAGE ID", "Digest": "DIGEST",
            "CreatedAt": "CREATED AT", "CreatedSince": "CREATED", "Size": "SIZE",
            "Platforms": "PLATFORMS",
        }))?);
    }
    for r in &rows {
        lines.push(template.render(r)?);
    }
    for line in align(&lines, table) {
        outln!("{line}")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether `image` belongs to the `REPOSITORY[:TAG]` argument.
fn in_repository(image: &ImageSummary, wanted: &str) -> bool {
    let Some(name) = image.name.as_deref() else {
        return false;
    };
    let (repo, tag) = split_store_name(name);
    let given = local::store_name(wanted).unwrap_or_default();
    let (want_repo, want_tag) = split_store_name(&given);
    let tag_given = wanted
        .rsplit_once(':')
        .is_some_and(|(_, t)| !t.contains('/'));
    repo == want_repo && (!tag_given || tag == want_tag)
}

/// An image's fields as `--format` sees them.
fn row(image: &ImageSummary, now: i64) -> serde_json::Value {
    let (repo, tag) = image
        .name
        .as_deref()
        .map_or(("<none>", "<none>"), split_store_name);
    let created = image.created.as_deref().and_then(parse_rfc3339);
    json!({
        "Repository": repo,
        "Tag": tag,
        // A multi-platform image is known by its index digest.
        "ID": short_id(if image.platforms.is_empty() { &image.id } else { &image.digest }),
        "Digest": image.digest,
        "CreatedAt": image.created.clone().unwrap_or_default(),
        "CreatedSince": created.map_or_else(|| String::from("N/A"), |c| human_since(now - c)),
        "Size": human_size(image.size),
        "Platforms": image.platforms.join(","),
    })
}

/// Table rows with their tab-separated cells padded to columns, as
/// Docker's tabwriter does; other formats as rendered.
fn align(lines: &[String], table: bool) -> Vec<String> {
    if !table {
        return lines.to_vec();
    }
    let cells: Vec<Vec<&str>> = lines.iter().map(|l| l.split('\t').collect()).collect();
    let mut widths: Vec<usize> = Vec::new();
    for row in &cells {
        for (i, c) in row.iter().enumerate() {
            let w = c.chars().count();
            match widths.get_mut(i) {
                Some(have) => *have = (*have).max(w),
                None => widths.push(w),
            }
        }
    }
    cells
        .iter()
        .map(|row| {
            let last = row.len().saturating_sub(1);
            row.iter()
                .enumerate()
                .map(|(i, c)| match i == last {
                    true => c.to_string(),
                    false => format!("{c:<w$}   ", w = widths[i]),
                })
                .collect::<String>()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_as_docker_reference_filters() {
        assert!(glob("busy*", "busybox"));
        assert!(glob("*:v?", "app:v2"));
        assert!(!glob("busy", "busybox"));
        assert!(glob("*", ""));
    }

    #[test]
    fn tables_pad_every_column_but_the_last() {
        let lines = vec!["A\tBB\tC".to_string(), "AAA\tB\tCC".to_string()];
        assert_eq!(align(&lines, true), ["A     BB   C", "AAA   B    CC"]);
    }
}
