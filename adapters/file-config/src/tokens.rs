//! Bearer tokens from a mounted Secret file ([`TokenFile`]), hot-reloaded, and the
//! [`Authenticator`] over them ([`TokenAuthenticator`], `--auth token`).
//!
//! The file format (`--auth-token-file`, `--admin-token-file`), one token per line:
//!
//! ```text
//! # comments and blank lines are ignored; surrounding whitespace is trimmed
//! alertmanager:3q2+7w1Bz4nL0aVxkQe9r8TgYh5uJ6iO
//! 9f8e7d6c5b4a39281706f5e4d3c2b1a0
//! ```
//!
//! - `NAME:TOKEN` names the token: the name (`[A-Za-z0-9._-]`, at most 63 characters) is the
//!   subject logs show for it; a token without a name is shown as `FILE#N` (the file's name, the
//!   token's position in it). Tokens never contain `:` (they are RFC 6750 `token68`: letters,
//!   digits, `-._~+/`, trailing `=`), so the first `:` always ends a name.
//! - A token has at least [`MIN_TOKEN_CHARS`] characters.
//! - Several tokens may be valid at once: a rotation adds the new token, moves the senders to it,
//!   then removes the old one, with no gap.
//!
//! Tokens are kept only as SHA-256 digests; a presented token is hashed once and compared in
//! constant time with every digest (no early exit revealing which, or how far, it matched).
//!
//! Hot reload: the kubelet mounts a Secret like a ConfigMap (the visible file is a symlink
//! through `..data`, swapped atomically), so the file's directory is watched with notify and the
//! file re-read through the symlink, plus a periodic re-read (`watch`). A file that becomes
//! unreadable, empty or invalid keeps the last good set in force, logged as an error at every
//! attempt that differs from the previous one and reported to the observer: an emptied or
//! half-written Secret must not lock every sender out, nor ever let anyone in. To revoke every
//! token, put a new one in their place. At start-up, any of these is an error
//! ([`TokenFile::load`]).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use gateway_ports::{Action, Authenticator, Denial, Verdict};
use sha2::{Digest, Sha256};
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

use crate::watch::{self, WatchHandle, WatchOptions, Watched};

/// The fewest characters a token may have: shorter ones can be guessed.
pub const MIN_TOKEN_CHARS: usize = 16;

/// The longest token name.
const MAX_NAME_CHARS: usize = 63;

/// Why a token file cannot be used. Never holds a token.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    /// The file cannot be read.
    #[error("cannot read the token file {path}: {cause}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why (in the message, so that a log line of it says why).
        cause: io::Error,
    },
    /// The file holds no token.
    #[error("the token file {path} holds no token (only blank lines and comments)")]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// A line is not a valid token.
    #[error("the token file {path}, line {line}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The line, from 1.
        line: usize,
        /// What is wrong (never the token).
        reason: String,
    },
}

/// One token, as its digest.
struct Entry {
    subject: String,
    digest: [u8; 32],
}

/// A parsed token file: every token's digest and subject.
struct TokenSet {
    entries: Vec<Entry>,
}

/// A problem on one line: (line, reason).
type LineProblem = (usize, String);

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~' | '+' | '/')
}

/// Whether `token` is an RFC 6750 `b64token` (`token68`): what a bearer header can carry.
pub(crate) fn is_token68(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty() && body.chars().all(is_token_char)
}

/// Parses the text of a token file; `file_name` names unnamed tokens.
fn parse(text: &str, file_name: &str) -> Result<TokenSet, LineProblem> {
    let mut entries = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, token) = match line.split_once(':') {
            Some((name, token)) => (Some(name.trim()), token.trim()),
            None => (None, line),
        };
        if let Some(name) = name {
            let valid = !name.is_empty()
                && name.len() <= MAX_NAME_CHARS
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
            if !valid {
                return Err((
                    number,
                    format!(
                        "a token name is 1 to {MAX_NAME_CHARS} letters, digits, '.', '_' or '-' (NAME:TOKEN)"
                    ),
                ));
            }
        }
        if !is_token68(token) {
            return Err((
                number,
                "a token is letters, digits, '-', '.', '_', '~', '+', '/' and trailing '='"
                    .to_owned(),
            ));
        }
        if token.len() < MIN_TOKEN_CHARS {
            return Err((
                number,
                format!("a token has at least {MIN_TOKEN_CHARS} characters"),
            ));
        }
        let subject = match name {
            Some(name) => name.to_owned(),
            None => format!("{file_name}#{}", entries.len() + 1),
        };
        entries.push(Entry {
            subject,
            digest: Sha256::digest(token.as_bytes()).into(),
        });
    }
    Ok(TokenSet { entries })
}

impl TokenSet {
    /// The subject of the token whose digest is `digest`, looking at every entry whatever
    /// matches (constant time in the digests' content).
    fn find(&self, digest: &[u8; 32]) -> Option<String> {
        let mut found = Choice::from(0);
        let mut at = 0u64;
        for (i, entry) in self.entries.iter().enumerate() {
            let equal = entry.digest[..].ct_eq(&digest[..]);
            at.conditional_assign(&(i as u64), equal);
            found |= equal;
        }
        if bool::from(found) {
            usize::try_from(at)
                .ok()
                .and_then(|i| self.entries.get(i))
                .map(|e| e.subject.clone())
        } else {
            None
        }
    }
}

/// What a re-read of a token file did, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenReload {
    /// A changed, valid file: its `tokens` are in force now.
    Applied {
        /// How many tokens the file holds.
        tokens: usize,
    },
    /// The file could not be read or is invalid: the last good set stays in force.
    Rejected,
}

/// What the last re-read saw, so that an unchanged file (or the same error) is not judged and
/// logged again at every resync.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Content([u8; 32]),
    Error(String),
}

type Observer = Box<dyn Fn(TokenReload) + Send + Sync>;

/// A token file (a mounted Secret's key), its tokens in force swapped atomically on a change.
pub struct TokenFile {
    path: PathBuf,
    dir: PathBuf,
    set: ArcSwap<TokenSet>,
    last_seen: Mutex<Option<Seen>>,
    observer: Mutex<Option<Observer>>,
}

impl fmt::Debug for TokenFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenFile")
            .field("path", &self.path)
            .field("tokens", &self.tokens())
            .finish_non_exhaustive()
    }
}

/// Reads the file through its symlinks; a `..data` swap that deletes the old directory while the
/// path is resolved is read again.
fn read(path: &Path) -> io::Result<Vec<u8>> {
    const ATTEMPTS: usize = 3;
    let mut result = std::fs::read(path);
    for _ in 1..ATTEMPTS {
        match &result {
            Err(e) if e.kind() == io::ErrorKind::NotFound => result = std::fs::read(path),
            _ => break,
        }
    }
    result
}

impl TokenFile {
    /// Reads the token file at `path` (blocking IO). Unreadable, empty or invalid: an error
    /// naming the file (and the line), never the token.
    pub fn load(path: impl Into<PathBuf>) -> Result<Self, TokenFileError> {
        let path = path.into();
        let bytes = read(&path).map_err(|cause| TokenFileError::Read {
            path: path.clone(),
            cause,
        })?;
        let set = Self::judge(&path, &bytes)?;
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        Ok(TokenFile {
            last_seen: Mutex::new(Some(Seen::Content(Sha256::digest(&bytes).into()))),
            path,
            dir,
            set: ArcSwap::from_pointee(set),
            observer: Mutex::new(None),
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many tokens are in force.
    pub fn tokens(&self) -> usize {
        self.set.load().entries.len()
    }

    /// Calls `observer` after each re-read that applied a change or was rejected.
    pub fn on_reload(&self, observer: impl Fn(TokenReload) + Send + Sync + 'static) {
        if let Ok(mut slot) = self.observer.lock() {
            *slot = Some(Box::new(observer));
        }
    }

    /// The subject of `digest`'s token, if the file holds it.
    fn find(&self, digest: &[u8; 32]) -> Option<String> {
        self.set.load().find(digest)
    }

    fn judge(path: &Path, bytes: &[u8]) -> Result<TokenSet, TokenFileError> {
        let invalid = |(line, reason): LineProblem| TokenFileError::Invalid {
            path: path.to_owned(),
            line,
            reason,
        };
        let text = std::str::from_utf8(bytes).map_err(|e| {
            let line = bytes[..e.valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1;
            invalid((line, "not UTF-8 text".to_owned()))
        })?;
        let file_name = path
            .file_name()
            .map_or_else(|| "tokens".into(), |n| n.to_string_lossy());
        let set = parse(text, &file_name).map_err(invalid)?;
        if set.entries.is_empty() {
            return Err(TokenFileError::Empty {
                path: path.to_owned(),
            });
        }
        Ok(set)
    }

    /// Reads the file again (blocking IO) and puts a changed, valid set in force; anything else
    /// keeps the set in force. Returns what it did, `None` when it saw what it saw last time.
    pub fn reload_now(&self) -> Option<TokenReload> {
        let read = read(&self.path);
        let seen = match &read {
            Ok(bytes) => Seen::Content(Sha256::digest(bytes).into()),
            Err(e) => Seen::Error(e.to_string()),
        };
        {
            let Ok(mut last) = self.last_seen.lock() else {
                return None;
            };
            if last.as_ref() == Some(&seen) {
                return None;
            }
            *last = Some(seen);
        }
        let judged = read
            .map_err(|cause| TokenFileError::Read {
                path: self.path.clone(),
                cause,
            })
            .and_then(|bytes| Self::judge(&self.path, &bytes));
        let outcome = match judged {
            Ok(set) => {
                let tokens = set.entries.len();
                self.set.store(Arc::new(set));
                tracing::info!(file = %self.path.display(), tokens, "token file reloaded");
                TokenReload::Applied { tokens }
            }
            Err(e) => {
                tracing::error!(
                    error = %e,
                    tokens = self.tokens(),
                    "token file rejected: the tokens in force stay until it is valid again"
                );
                TokenReload::Rejected
            }
        };
        if let Ok(observer) = self.observer.lock()
            && let Some(observer) = observer.as_ref()
        {
            observer(outcome);
        }
        Some(outcome)
    }

    /// Watches the file's directory on the current tokio runtime until the handle is dropped.
    pub fn watch(self: &Arc<Self>, options: WatchOptions) -> WatchHandle {
        watch::watch(Arc::clone(self), options)
    }
}

#[async_trait]
impl Watched for TokenFile {
    fn watched_dir(&self) -> &Path {
        &self.dir
    }

    async fn reread(self: Arc<Self>) {
        // Blocking IO off the runtime's threads.
        let _ = tokio::task::spawn_blocking(move || self.reload_now()).await;
    }
}

/// `--auth token`: the signal tokens (`--auth-token-file`) and, optionally, the admin tokens
/// (`--admin-token-file`).
///
/// - Without admin tokens, a signal token may do everything (send signals, read the settings,
///   reload).
/// - With admin tokens, each file grants one role: admin actions need an admin token, signals a
///   signal token; a known token used for the other role is `Forbidden` (403), an unknown one
///   `Invalid` (401).
///
/// Both sets are always searched, so the time taken says nothing about which holds the token.
#[derive(Debug)]
pub struct TokenAuthenticator {
    signal: Arc<TokenFile>,
    admin: Option<Arc<TokenFile>>,
}

impl TokenAuthenticator {
    /// Over the loaded files.
    pub fn new(signal: Arc<TokenFile>, admin: Option<Arc<TokenFile>>) -> Self {
        TokenAuthenticator { signal, admin }
    }

    /// The signal tokens.
    pub fn signal(&self) -> &Arc<TokenFile> {
        &self.signal
    }

    /// The admin tokens, when separate.
    pub fn admin(&self) -> Option<&Arc<TokenFile>> {
        self.admin.as_ref()
    }

    /// Watches every file (see [`TokenFile::watch`]).
    pub fn watch(&self, options: WatchOptions) -> Vec<WatchHandle> {
        std::iter::once(&self.signal)
            .chain(self.admin.as_ref())
            .map(|file| file.watch(options))
            .collect()
    }
}

#[async_trait]
impl Authenticator for TokenAuthenticator {
    async fn authenticate(&self, token: &str, action: Action) -> Verdict {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let signal = self.signal.find(&digest);
        let admin = self.admin.as_ref().map(|file| file.find(&digest));
        let (allowed, other_role) = match admin {
            None => (signal, None),
            Some(admin) if action.is_admin() => (admin, signal),
            Some(admin) => (signal, admin),
        };
        match (allowed, other_role) {
            (Some(subject), _) => Verdict::Allowed { subject },
            (None, Some(_)) => Verdict::Denied(Denial::Forbidden),
            (None, None) => Verdict::Denied(Denial::Invalid),
        }
    }

    fn mode(&self) -> &'static str {
        "token"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbb";

    fn subjects(text: &str) -> Result<Vec<String>, LineProblem> {
        parse(text, "tokens").map(|s| s.entries.into_iter().map(|e| e.subject).collect())
    }

    #[test]
    fn comments_blank_lines_whitespace_and_names() {
        let text = format!("# rotation in progress\n\n  {A}  \nam : {B}\n\t# old\n");
        assert_eq!(subjects(&text).unwrap(), ["tokens#1", "am"]);
        let set = parse(&text, "tokens").unwrap();
        let digest_a: [u8; 32] = Sha256::digest(A.as_bytes()).into();
        let digest_b: [u8; 32] = Sha256::digest(B.as_bytes()).into();
        assert_eq!(set.find(&digest_a).as_deref(), Some("tokens#1"));
        assert_eq!(set.find(&digest_b).as_deref(), Some("am"));
        let other: [u8; 32] = Sha256::digest(b"cccccccccccccccccccc").into();
        assert_eq!(set.find(&other), None);
    }

    #[test]
    fn padding_and_base64_characters_are_tokens() {
        assert!(subjects("abcDEF0123456789+/-._~==\n").is_ok());
    }

    #[test]
    fn bad_lines_are_refused_by_line_never_quoting_the_token() {
        let secret = "short-secret";
        let (line, reason) = subjects(&format!("# c\n{A}\n{secret}\n")).unwrap_err();
        assert_eq!(line, 3);
        assert!(reason.contains("at least 16"), "{reason}");
        assert!(!reason.contains(secret));
        let (line, reason) = subjects(&format!("{A} {B}\n")).unwrap_err();
        assert_eq!(line, 1);
        assert!(reason.contains("letters"), "{reason}");
        let (line, _) = subjects(&format!("bad name:{A}\n")).unwrap_err();
        assert_eq!(line, 1);
        let (line, _) = subjects(&format!(":{A}\n")).unwrap_err();
        assert_eq!(line, 1);
        let (line, _) = subjects("name:\n").unwrap_err();
        assert_eq!(line, 1);
        let (line, _) = subjects("a=b=ccccccccccccccccccc\n").unwrap_err();
        assert_eq!(line, 1, "'=' only at the end");
    }

    fn file(dir: &Path, text: &[u8]) -> PathBuf {
        let path = dir.join("tokens");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn loading_refuses_a_missing_empty_or_invalid_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = TokenFile::load(dir.path().join("absent")).unwrap_err();
        assert!(matches!(missing, TokenFileError::Read { .. }), "{missing}");
        let path = file(dir.path(), b"# nothing\n\n");
        let empty = TokenFile::load(&path).unwrap_err();
        assert!(matches!(empty, TokenFileError::Empty { .. }), "{empty}");
        let path = file(dir.path(), b"\xff\xfe\n");
        let binary = TokenFile::load(&path).unwrap_err();
        assert!(binary.to_string().contains("UTF-8"), "{binary}");
        file(dir.path(), format!("{A}\n").as_bytes());
        assert_eq!(TokenFile::load(&path).unwrap().tokens(), 1);
    }

    #[test]
    fn a_reload_applies_a_valid_change_and_keeps_the_last_good_set_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        let path = file(dir.path(), format!("{A}\n").as_bytes());
        let tokens = Arc::new(TokenFile::load(&path).unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let observed = seen.clone();
        tokens.on_reload(move |r| observed.lock().unwrap().push(r));
        let a: [u8; 32] = Sha256::digest(A.as_bytes()).into();
        let b: [u8; 32] = Sha256::digest(B.as_bytes()).into();

        assert_eq!(tokens.reload_now(), None, "unchanged");
        file(dir.path(), format!("{A}\n{B}\n").as_bytes());
        assert_eq!(
            tokens.reload_now(),
            Some(TokenReload::Applied { tokens: 2 })
        );
        assert!(tokens.find(&a).is_some() && tokens.find(&b).is_some());

        for bad in [&b""[..], b"# all gone\n", b"short\n"] {
            file(dir.path(), bad);
            assert_eq!(tokens.reload_now(), Some(TokenReload::Rejected));
            assert_eq!(tokens.reload_now(), None, "the same content is judged once");
            assert_eq!(tokens.tokens(), 2, "the last good set stays");
        }
        std::fs::remove_file(&path).unwrap();
        assert_eq!(tokens.reload_now(), Some(TokenReload::Rejected));
        assert!(tokens.find(&a).is_some());

        file(dir.path(), format!("{B}\n").as_bytes());
        assert_eq!(
            tokens.reload_now(),
            Some(TokenReload::Applied { tokens: 1 })
        );
        assert!(tokens.find(&a).is_none(), "A revoked");
        assert_eq!(seen.lock().unwrap().len(), 6);
    }

    async fn verdict(auth: &TokenAuthenticator, token: &str, action: Action) -> Verdict {
        auth.authenticate(token, action).await
    }

    #[tokio::test]
    async fn signal_tokens_do_everything_without_admin_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let signal =
            Arc::new(TokenFile::load(file(dir.path(), format!("am:{A}\n").as_bytes())).unwrap());
        let auth = TokenAuthenticator::new(signal, None);
        assert_eq!(auth.mode(), "token");
        for action in Action::ALL {
            assert_eq!(
                verdict(&auth, A, action).await,
                Verdict::Allowed {
                    subject: "am".into()
                }
            );
            assert_eq!(
                verdict(&auth, B, action).await,
                Verdict::Denied(Denial::Invalid)
            );
        }
    }

    #[tokio::test]
    async fn with_admin_tokens_each_file_grants_one_role() {
        let dir = tempfile::tempdir().unwrap();
        let signal = dir.path().join("signal");
        std::fs::write(&signal, format!("{A}\n")).unwrap();
        let admin = dir.path().join("admin");
        std::fs::write(&admin, format!("ops:{B}\n")).unwrap();
        let auth = TokenAuthenticator::new(
            Arc::new(TokenFile::load(&signal).unwrap()),
            Some(Arc::new(TokenFile::load(&admin).unwrap())),
        );
        let unknown = "cccccccccccccccccccccccc";
        assert!(matches!(
            verdict(&auth, A, Action::SendSignals).await,
            Verdict::Allowed { .. }
        ));
        assert_eq!(
            verdict(&auth, B, Action::SendSignals).await,
            Verdict::Denied(Denial::Forbidden)
        );
        for action in [Action::ReadConfig, Action::Reload] {
            assert_eq!(
                verdict(&auth, B, action).await,
                Verdict::Allowed {
                    subject: "ops".into()
                }
            );
            assert_eq!(
                verdict(&auth, A, action).await,
                Verdict::Denied(Denial::Forbidden)
            );
            assert_eq!(
                verdict(&auth, unknown, action).await,
                Verdict::Denied(Denial::Invalid)
            );
        }
    }
}
