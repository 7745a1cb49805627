//! `RUN --mount=…`: one flag value parsed into a typed [`Mount`] with
//! BuildKit's rules (`instructions/commands_runmount.go`): comma-separated
//! CSV fields, keys case-insensitive, values expanded, options checked
//! against the mount type they belong to.

use crate::graph::Sharing;

/// `type=` of a mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MountType {
    /// A read-only (or throw-away writable) view of another state.
    #[default]
    Bind,
    /// A persistent cache directory.
    Cache,
    /// An empty tmpfs.
    Tmpfs,
    /// A secret file or variable.
    Secret,
    /// An ssh agent socket.
    Ssh,
}

impl MountType {
    fn parse(value: &str) -> Result<Self, String> {
        Ok(match value.to_ascii_lowercase().as_str() {
            "bind" => Self::Bind,
            "cache" => Self::Cache,
            "tmpfs" => Self::Tmpfs,
            "secret" => Self::Secret,
            "ssh" => Self::Ssh,
            _ => {
                return Err(format!(
                    "unsupported mount type {value:?}: expected bind, cache, tmpfs, secret or ssh"
                ));
            }
        })
    }

    /// The name as written in `type=`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Bind => "bind",
            Self::Cache => "cache",
            Self::Tmpfs => "tmpfs",
            Self::Secret => "secret",
            Self::Ssh => "ssh",
        }
    }

    /// Whether `mode`, `uid` and `gid` mean something for this type.
    fn has_file_info(self) -> bool {
        matches!(self, Self::Cache | Self::Secret | Self::Ssh)
    }
}

/// One parsed `--mount`. Options a type does not take are rejected while
/// parsing, so every field that is set means something for [`Mount::kind`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Mount {
    /// `type=` (default bind).
    pub kind: MountType,
    /// `from=`: a stage or image name (bind, cache).
    pub from: Option<String>,
    /// `source=` / `src=`: a path inside `from` (or the context), or a
    /// secret's id.
    pub source: Option<String>,
    /// `target=` / `dst=` / `destination=`.
    pub target: Option<String>,
    /// `ro`/`readonly`, or not `rw`/`readwrite`. Defaults: binds, secrets
    /// and ssh read-only; caches and tmpfs writable.
    pub readonly: bool,
    /// `size=` of a tmpfs in bytes.
    pub size: Option<u64>,
    /// `id=` of a cache, secret or ssh agent.
    pub id: Option<String>,
    /// `sharing=` of a cache.
    pub sharing: Sharing,
    /// `required` (secret, ssh).
    pub required: bool,
    /// `env=` (secret): also expose it as this variable.
    pub env: Option<String>,
    /// `mode=` (octal).
    pub mode: Option<u32>,
    /// `uid=`.
    pub uid: Option<u32>,
    /// `gid=`.
    pub gid: Option<u32>,
}

/// Go's `strconv.ParseBool`.
fn parse_bool(key: &str, value: &str) -> Result<bool, String> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!("invalid value for {key}: {value}")),
    }
}

fn parse_number(key: &str, value: &str, radix: u32) -> Result<u32, String> {
    u32::from_str_radix(value, radix).map_err(|_| format!("invalid value {value} for {key}"))
}

/// docker's `units.RAMInBytes`: `64m`, `1.5GiB`, `1024` (binary multiples).
pub fn ram_in_bytes(value: &str) -> Result<u64, String> {
    let invalid = || format!("invalid value for size: {value}");
    let digits = value
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(digits);
    if number.is_empty() || number.starts_with('.') || number.ends_with('.') {
        return Err(invalid());
    }
    let number: f64 = number.parse().map_err(|_| invalid())?;
    let unit = unit.strip_prefix(' ').unwrap_or(unit).to_ascii_lowercase();
    let unit = unit.strip_suffix('b').unwrap_or(&unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let shift = match unit {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        "p" => 50,
        _ => return Err(invalid()),
    };
    let bytes = number * (1u64 << shift) as f64;
    if !(bytes.is_finite() && bytes < u64::MAX as f64) {
        return Err(invalid());
    }
    Ok(bytes as u64)
}

/// The fields of a CSV record (Go's `encoding/csv` rules for one line: a
/// field that starts with `"` is quoted, `""` inside it is a quote).
pub(crate) fn csv_fields(record: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut chars = record.chars().peekable();
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    None => {
                        return Err(String::from(
                            "failed to parse csv mounts: unterminated quote",
                        ));
                    }
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                }
            }
            if !matches!(chars.peek(), None | Some(',')) {
                return Err(String::from(
                    "failed to parse csv mounts: extraneous text after a quoted field",
                ));
            }
        } else {
            while let Some(c) = chars.next_if(|c| *c != ',') {
                if c == '"' {
                    return Err(String::from(
                        "failed to parse csv mounts: bare \" in non-quoted field",
                    ));
                }
                field.push(c);
            }
        }
        fields.push(field);
        if chars.next().is_none() {
            return Ok(fields);
        }
    }
}

/// The `from=` value of a `--mount` as written (before expansion), if any:
/// what stage analysis needs before the mount is lowered.
pub fn from_value(spec: &str) -> Option<String> {
    csv_fields(spec).ok()?.into_iter().rev().find_map(|f| {
        let (k, v) = f.split_once('=')?;
        k.eq_ignore_ascii_case("from").then(|| v.to_string())
    })
}

impl Mount {
    /// Parses one `--mount` value; `expand` expands each `key=value`'s
    /// value with the instruction's environment.
    pub fn parse(
        spec: &str,
        expand: &mut dyn FnMut(&str) -> Result<String, String>,
    ) -> Result<Self, String> {
        let mut m = Mount::default();
        let mut sharing_set = false;
        let mut readonly = None;
        for field in csv_fields(spec)? {
            let Some((key, value)) = field.split_once('=') else {
                match field.to_ascii_lowercase().as_str() {
                    "readonly" | "ro" => readonly = Some(true),
                    "readwrite" | "rw" => readonly = Some(false),
                    "required" => m.set_required(true)?,
                    _ => return Err(format!("invalid field '{field}' must be a key=value pair")),
                }
                continue;
            };
            let key = key.to_ascii_lowercase();
            let value = expand(value)?;
            match key.as_str() {
                "type" => m.kind = MountType::parse(&value)?,
                "from" => m.from = Some(value),
                "source" | "src" => m.source = Some(value),
                "target" | "dst" | "destination" => m.target = Some(value),
                "readonly" | "ro" => readonly = Some(parse_bool(&key, &value)?),
                "readwrite" | "rw" => readonly = Some(!parse_bool(&key, &value)?),
                "required" => m.set_required(parse_bool(&key, &value)?)?,
                "size" if m.kind == MountType::Tmpfs => m.size = Some(ram_in_bytes(&value)?),
                "id" => m.id = Some(value),
                "sharing" => {
                    m.sharing = match value.to_ascii_lowercase().as_str() {
                        "shared" => Sharing::Shared,
                        "private" => Sharing::Private,
                        "locked" => Sharing::Locked,
                        _ => {
                            return Err(format!(
                                "unsupported sharing value {value:?}: expected shared, private or locked"
                            ));
                        }
                    };
                    sharing_set = true;
                }
                "mode" => m.mode = Some(parse_number(&key, &value, 8)?),
                "uid" => m.uid = Some(parse_number(&key, &value, 10)?),
                "gid" => m.gid = Some(parse_number(&key, &value, 10)?),
                "env" => m.env = Some(value),
                "size" => return Err(m.unexpected(&key)),
                _ => return Err(format!("unexpected key '{key}' in '{field}'")),
            }
        }
        m.readonly = readonly.unwrap_or(!matches!(m.kind, MountType::Cache | MountType::Tmpfs));
        m.validate(sharing_set)?;
        Ok(m)
    }

    fn unexpected(&self, key: &str) -> String {
        format!(
            "unexpected key '{key}' for mount type '{}'",
            self.kind.name()
        )
    }

    fn set_required(&mut self, required: bool) -> Result<(), String> {
        if !matches!(self.kind, MountType::Secret | MountType::Ssh) {
            return Err(self.unexpected("required"));
        }
        self.required = required;
        Ok(())
    }

    /// The rules that need the whole mount (BuildKit's checks after its
    /// field loop).
    fn validate(&self, sharing_set: bool) -> Result<(), String> {
        let name = self.kind.name();
        if !self.kind.has_file_info() {
            for (key, set) in [
                ("mode", self.mode.is_some()),
                ("uid", self.uid.is_some()),
                ("gid", self.gid.is_some()),
            ] {
                if set {
                    return Err(format!("{key} not allowed for \"{name}\" type mounts"));
                }
            }
        }
        if self.kind == MountType::Secret {
            if self.from.is_some() {
                return Err(String::from("secret mount should not have a from"));
            }
            if sharing_set {
                return Err(String::from("secret mount should not define sharing"));
            }
            if self.source.is_none() && self.target.is_none() && self.id.is_none() {
                return Err(String::from(
                    "invalid secret mount. one of source, target required",
                ));
            }
            if self.source.is_some() && self.id.is_some() {
                return Err(String::from("both source and id can't be set"));
            }
        }
        if sharing_set && self.kind != MountType::Cache {
            return Err(format!("invalid cache sharing set for {name} mount"));
        }
        if self.env.is_some() && self.kind != MountType::Secret {
            return Err(self.unexpected("env"));
        }
        if self.from.is_some() && matches!(self.kind, MountType::Tmpfs | MountType::Ssh) {
            return Err(self.unexpected("from"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(spec: &str) -> Result<Mount, String> {
        Mount::parse(spec, &mut |v| Ok(v.replace("$D", "/deps")))
    }

    #[test]
    fn a_cache_mount_carries_every_option_typed() {
        let m = parse("type=cache,target=/c,id=x,sharing=private,uid=1000,gid=100,mode=0750,ro,from=base,source=$D").unwrap();
        assert_eq!(m.kind, MountType::Cache);
        assert_eq!(m.sharing, Sharing::Private);
        assert_eq!((m.uid, m.gid, m.mode), (Some(1000), Some(100), Some(0o750)));
        assert!(m.readonly);
        assert_eq!(m.from.as_deref(), Some("base"));
        assert_eq!(m.source.as_deref(), Some("/deps"));
        assert_eq!(m.id.as_deref(), Some("x"));
    }

    #[test]
    fn read_only_defaults_depend_on_the_type() {
        assert!(parse("target=/a").unwrap().readonly);
        assert!(!parse("type=bind,target=/a,rw").unwrap().readonly);
        assert!(
            !parse("type=bind,target=/a,readwrite=true")
                .unwrap()
                .readonly
        );
        assert!(!parse("type=cache,target=/a").unwrap().readonly);
        assert!(!parse("type=tmpfs,target=/a").unwrap().readonly);
        assert!(parse("type=tmpfs,target=/a,readonly=1").unwrap().readonly);
    }

    #[test]
    fn tmpfs_size_takes_docker_units() {
        let size = |s: &str| parse(&format!("type=tmpfs,target=/t,size={s}")).map(|m| m.size);
        assert_eq!(size("1024"), Ok(Some(1024)));
        assert_eq!(size("64m"), Ok(Some(64 << 20)));
        assert_eq!(size("1.5GiB"), Ok(Some(3 << 29)));
        assert!(size("lots").is_err());
        assert!(size("12x").is_err());
        assert!(parse("type=cache,target=/c,size=1m").is_err());
    }

    #[test]
    fn options_of_another_type_are_errors() {
        for (spec, message) in [
            (
                "type=bind,target=/a,uid=1",
                "uid not allowed for \"bind\" type mounts",
            ),
            (
                "type=tmpfs,target=/a,mode=700",
                "mode not allowed for \"tmpfs\" type mounts",
            ),
            (
                "type=bind,target=/a,sharing=locked",
                "invalid cache sharing set for bind mount",
            ),
            (
                "type=cache,target=/a,required",
                "unexpected key 'required' for mount type 'cache'",
            ),
            (
                "type=secret,id=a,from=x",
                "secret mount should not have a from",
            ),
            (
                "type=secret,id=a,source=b",
                "both source and id can't be set",
            ),
            (
                "type=cache,target=/a,sharing=sometimes",
                "unsupported sharing value \"sometimes\": expected shared, private or locked",
            ),
            (
                "type=volume,target=/a",
                "unsupported mount type \"volume\": expected bind, cache, tmpfs, secret or ssh",
            ),
            (
                "type=cache,target=/a,colour=red",
                "unexpected key 'colour' in 'colour=red'",
            ),
            (
                "type=cache,target=/a,nocolour",
                "invalid field 'nocolour' must be a key=value pair",
            ),
            ("type=cache,target=/a,uid=-1", "invalid value -1 for uid"),
            ("type=cache,target=/a,mode=9", "invalid value 9 for mode"),
            (
                "type=bind,target=/a,rw=maybe",
                "invalid value for rw: maybe",
            ),
        ] {
            assert_eq!(parse(spec).unwrap_err(), message, "{spec}");
        }
    }

    #[test]
    fn quoted_csv_fields_may_hold_commas() {
        let m = parse("type=bind,\"target=/a,b\",source=x").unwrap();
        assert_eq!(m.target.as_deref(), Some("/a,b"));
        assert!(parse("type=bind,\"target=/a").is_err());
    }

    #[test]
    fn the_from_value_is_found_in_any_case_and_quoting() {
        assert_eq!(
            from_value("type=bind,From=base,target=/a").as_deref(),
            Some("base")
        );
        assert_eq!(from_value("\"from=x\",target=/a").as_deref(), Some("x"));
        assert_eq!(from_value("type=cache,target=/a"), None);
    }

    #[test]
    fn keys_are_case_insensitive_and_values_expanded() {
        let m = parse("Type=Cache,Target=$D").unwrap();
        assert_eq!(m.kind, MountType::Cache);
        assert_eq!(m.target.as_deref(), Some("/deps"));
    }
}
