//! The job dom0 runs for one boot: the guest's xl config, the steps of
//! `xtask/dom0/run-job.sh` (create, wait for the end or a console line, destroy, run a
//! command, digest a file), and files that ride along in the overlay (disk images).

use anyhow::{Result, bail};

/// One step of dom0's job runner (see `xtask/dom0/run-job.sh` for what each does there).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// `xl create [-p] /pvxen/<cfg>`.
    Create {
        /// The config file under `/pvxen/`.
        config: String,
        /// Created paused (`-p`), to look at its devices before it runs.
        paused: bool,
    },
    /// `xl pause`, then the console drained (what the guest printed before is all forwarded).
    Pause,
    /// `xl unpause`.
    Unpause,
    /// Wait until the guest ends (or dom0's guest timeout).
    WaitEnd,
    /// Wait until a console line contains this text.
    WaitLine(String),
    /// Drain the console, then `xl destroy`.
    Destroy,
    /// Run a shell command; its first output line is result `key`.
    Run {
        /// The result's name.
        key: String,
        /// The command (`sh -c`; `$XL` and `$NAME` are set).
        command: String,
    },
    /// SHA-256 of a file in dom0 (of its first `bytes` bytes) as result `key`.
    Digest {
        /// The result's name.
        key: String,
        /// The file.
        path: String,
        /// Only this many bytes from the start.
        bytes: Option<u64>,
    },
}

/// A word that stays one word on a step line: no white space, nothing empty.
fn check_word(what: &str, word: &str) -> Result<()> {
    if word.is_empty() || word.contains(char::is_whitespace) {
        bail!("job step {what} {word:?} must be one word");
    }
    Ok(())
}

impl Step {
    /// The step's line in `job.steps`.
    pub fn line(&self) -> Result<String> {
        Ok(match self {
            Self::Create { config, paused } => {
                check_word("config", config)?;
                format!("create {config}{}", if *paused { " paused" } else { "" })
            }
            Self::Pause => "pause".to_owned(),
            Self::Unpause => "unpause".to_owned(),
            Self::WaitEnd => "wait-end".to_owned(),
            Self::WaitLine(text) => {
                if text.is_empty() || text.contains('\n') {
                    bail!("wait-line text {text:?} must be one non-empty line");
                }
                format!("wait-line {text}")
            }
            Self::Destroy => "destroy".to_owned(),
            Self::Run { key, command } => {
                check_word("key", key)?;
                if command.is_empty() || command.contains('\n') {
                    bail!("run command {command:?} must be one non-empty line");
                }
                format!("run {key} {command}")
            }
            Self::Digest { key, path, bytes } => {
                check_word("key", key)?;
                check_word("path", path)?;
                match bytes {
                    Some(n) => format!("digest {key} {path} {n}"),
                    None => format!("digest {key} {path}"),
                }
            }
        })
    }
}

/// What dom0 does in one boot.
#[derive(Clone, Debug, Default)]
pub struct Job {
    /// The xl config (`/pvxen/guest.cfg`).
    pub config: String,
    /// The steps; empty means dom0's default: create, wait for the end, destroy.
    pub steps: Vec<Step>,
    /// Files placed in `/pvxen/` (name, content).
    pub files: Vec<(String, Vec<u8>)>,
}

impl Job {
    /// The default job for `config`: create, wait for the end, destroy.
    pub fn simple(config: String) -> Self {
        Self {
            config,
            ..Self::default()
        }
    }

    /// The `job.steps` file, or `None` for the default job. Steps that cannot be written
    /// (see [`Step::line`]) were refused when the job was built, so this is infallible for
    /// jobs made with [`Job::with_steps`].
    pub fn steps_text(&self) -> Option<String> {
        if self.steps.is_empty() {
            return None;
        }
        let lines: Vec<String> = self.steps.iter().filter_map(|s| s.line().ok()).collect();
        Some(lines.join("\n") + "\n")
    }

    /// A job with `steps`, each checked.
    pub fn with_steps(
        config: String,
        steps: Vec<Step>,
        files: Vec<(String, Vec<u8>)>,
    ) -> Result<Self> {
        for step in &steps {
            step.line()?;
        }
        Ok(Self {
            config,
            steps,
            files,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_render_as_run_job_reads_them() {
        let job = Job::with_steps(
            "cfg".into(),
            vec![
                Step::Create {
                    config: "guest.cfg".into(),
                    paused: true,
                },
                Step::Run {
                    key: "f_req".into(),
                    command: "cat /sys/x/$($XL domid $NAME)".into(),
                },
                Step::Unpause,
                Step::WaitLine("RESULT".into()),
                Step::Pause,
                Step::WaitEnd,
                Step::Destroy,
                Step::Digest {
                    key: "d".into(),
                    path: "/tmp/x.img".into(),
                    bytes: Some(4096),
                },
            ],
            vec![],
        )
        .unwrap();
        assert_eq!(
            job.steps_text().unwrap(),
            "create guest.cfg paused\nrun f_req cat /sys/x/$($XL domid $NAME)\nunpause\n\
             wait-line RESULT\npause\nwait-end\ndestroy\ndigest d /tmp/x.img 4096\n"
        );
        assert_eq!(Job::simple("cfg".into()).steps_text(), None);
    }

    #[test]
    fn steps_that_would_not_parse_are_refused() {
        let bad = [
            Step::Run {
                key: "two words".into(),
                command: "true".into(),
            },
            Step::Run {
                key: "k".into(),
                command: "a\nb".into(),
            },
            Step::WaitLine(String::new()),
            Step::Digest {
                key: "k".into(),
                path: "/a b".into(),
                bytes: None,
            },
        ];
        for step in bad {
            assert!(
                Job::with_steps("c".into(), vec![step.clone()], vec![]).is_err(),
                "{step:?}"
            );
        }
    }
}
