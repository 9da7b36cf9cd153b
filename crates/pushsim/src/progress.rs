//! Progress while a run goes: indicatif bars on a terminal; a line per phase elsewhere (CI logs
//! stay short).

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use pushsim_run::{Observer, Phase, Status};

/// The run's bars.
pub struct Bars {
    tty: bool,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    spinner: Option<ProgressBar>,
    ramp: Option<ProgressBar>,
    run: Option<ProgressBar>,
}

impl Bars {
    /// Bars on stderr when it is a terminal.
    pub fn new() -> Self {
        Self {
            tty: std::io::stderr().is_terminal(),
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Clears the bars before the summary is printed.
    pub fn finish(&self) {
        let mut s = self.lock();
        for b in [s.spinner.take(), s.ramp.take(), s.run.take()]
            .into_iter()
            .flatten()
        {
            b.finish_and_clear();
        }
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
}

impl Observer for Bars {
    fn phase(&self, phase: Phase) {
        if !self.tty {
            match &phase {
                Phase::Starting(what) => eprintln!("pushsim: starting {what}"),
                Phase::Waiting(what) => eprintln!("pushsim: {what}"),
                Phase::Running { agents, duration_s } => {
                    eprintln!("pushsim: running {agents} agents for {duration_s:.0}s")
                }
                Phase::Draining => eprintln!("pushsim: waiting for wake-ups in flight"),
                Phase::Stopping => eprintln!("pushsim: collecting measurements"),
            }
            return;
        }
        let mut s = self.lock();
        match phase {
            Phase::Starting(_) | Phase::Waiting(_) => {
                let sp = s.spinner.get_or_insert_with(|| {
                    let sp = ProgressBar::new_spinner().with_style(style("{spinner} {msg}"));
                    sp.enable_steady_tick(Duration::from_millis(120));
                    sp
                });
                sp.set_message(match phase {
                    Phase::Starting(what) => format!("starting {what}"),
                    Phase::Waiting(what) => what,
                    _ => String::new(),
                });
            }
            Phase::Running { agents, duration_s } => {
                if let Some(sp) = s.spinner.take() {
                    sp.finish_and_clear();
                }
                let mp = indicatif::MultiProgress::new();
                let ramp = mp.add(
                    ProgressBar::new(agents)
                        .with_style(style("connected {bar:30} {pos}/{len} {msg}")),
                );
                let run = mp.add(
                    ProgressBar::new(duration_s.ceil() as u64)
                        .with_style(style("run       {bar:30} {pos}/{len}s {msg}")),
                );
                s.ramp = Some(ramp);
                s.run = Some(run);
            }
            Phase::Draining => {
                if let Some(r) = &s.run {
                    r.set_message("waiting for wake-ups in flight");
                }
            }
            Phase::Stopping => {
                if let Some(r) = &s.run {
                    r.set_message("collecting measurements");
                }
            }
        }
    }

    fn status(&self, st: Status) {
        if !self.tty {
            return;
        }
        let s = self.lock();
        if let Some(r) = &s.ramp {
            r.set_position(st.connected);
            if st.connect_failures > 0 {
                r.set_message(format!("{} failed attempts", st.connect_failures));
            }
        }
        if let Some(r) = &s.run {
            r.set_position(st.elapsed_s as u64);
            r.set_message(format!(
                "wake-ups {} sent, {} received",
                st.wakeups_sent, st.wakeups_received
            ));
        }
    }
}
