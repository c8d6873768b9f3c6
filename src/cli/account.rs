//! `teleconsult account`: web console passwords, set by an admin (client).

use std::io::BufRead;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use teleconsult::proto::v1 as pb;

use super::client::{ConnectionArgs, finish, out, print_json};
use super::local_time;

#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Set a user's console password (and lift a lockout). The password is read from
    /// standard input, one line, so that it never appears in the process list.
    SetPassword {
        /// The user whose password this is.
        user: String,
        #[command(flatten)]
        connection: ConnectionArgs,
    },
    /// Make a one-time enrollment link with which the user chooses their own password.
    Enroll {
        user: String,
        /// How long the link is valid, in hours (default 72, at most 720).
        #[arg(long, default_value_t = 0)]
        valid_hours: u32,
        /// The console's address, to print the whole link, e.g. https://console.example:7444
        #[arg(long)]
        console_url: Option<String>,
        #[command(flatten)]
        connection: ConnectionArgs,
    },
}

pub async fn run(command: AccountCommand) -> ExitCode {
    finish(dispatch(command).await)
}

async fn dispatch(command: AccountCommand) -> anyhow::Result<ExitCode> {
    match command {
        AccountCommand::SetPassword { user, connection } => {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("reading the password from standard input")?;
            let password = line.trim_end_matches(['\r', '\n']).to_owned();
            let mut broker = connection.connect().await?;
            broker
                .account
                .set_password(pb::SetPasswordRequest {
                    user_id: user.clone(),
                    password,
                })
                .await?;
            if broker.json {
                print_json(&serde_json::json!({ "user_id": user, "password_set": true }));
            } else {
                out!("set the console password of {user}; any lockout is lifted");
            }
        }
        AccountCommand::Enroll {
            user,
            valid_hours,
            console_url,
            connection,
        } => {
            let mut broker = connection.connect().await?;
            let made = broker
                .account
                .create_enrollment(pb::CreateEnrollmentRequest {
                    user_id: user.clone(),
                    valid_hours,
                })
                .await?
                .into_inner();
            let link = match console_url {
                Some(base) => format!("{}{}", base.trim_end_matches('/'), made.enrollment_path),
                None => made.enrollment_path.clone(),
            };
            let expires = local_time::display_timestamp(made.expires_at.as_ref());
            if broker.json {
                print_json(&serde_json::json!({
                    "user_id": user,
                    "link": link,
                    "expires_at": expires,
                }));
            } else {
                out!("enrollment link for {user} (one use, until {expires}):");
                out!("  {link}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
