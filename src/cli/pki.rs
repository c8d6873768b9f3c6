//! `teleconsult pki`: the deployment's certificate authority.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Subcommand;
use teleconsult::auth::pki::{ClientSubject, PkiDirectory, Validity, read_file};
use teleconsult::domain::directory::Role;
use teleconsult::domain::ids::{InstitutionId, UserId};

#[derive(Debug, Subcommand)]
pub enum PkiCommand {
    /// Create a CA, the broker's server certificate and an empty CRL.
    Init {
        /// Directory for the PKI (see certs/README.md).
        #[arg(long, default_value = "teleconsult-data/pki")]
        dir: PathBuf,
        /// DNS name or IP address the broker is reached at; repeat for several.
        #[arg(long = "san", required = true)]
        subject_alt_names: Vec<String>,
        #[arg(long, default_value = "teleconsult CA")]
        ca_name: String,
    },
    /// Issue a client certificate: CN = user, O = institution, OU = role.
    Issue {
        #[arg(long, default_value = "teleconsult-data/pki")]
        dir: PathBuf,
        #[arg(long)]
        user: String,
        #[arg(long)]
        institution: String,
        /// clinic_staff, doctor, interpreter or admin.
        #[arg(long)]
        role: String,
        /// Days the certificate is valid.
        #[arg(long, default_value_t = 365)]
        days: i64,
        /// Replace the user's existing certificate files (revoke the old one first, or
        /// it stays valid until it expires).
        #[arg(long)]
        force: bool,
    },
    /// Add a certificate to the CRL; a running broker honours it at the next handshake.
    Revoke {
        #[arg(long, default_value = "teleconsult-data/pki")]
        dir: PathBuf,
        /// The certificate (PEM) to revoke.
        #[arg(long)]
        cert: PathBuf,
    },
}

pub fn run(command: PkiCommand) -> anyhow::Result<ExitCode> {
    match command {
        PkiCommand::Init {
            dir,
            subject_alt_names,
            ca_name,
        } => {
            let pki = PkiDirectory::new(&dir);
            pki.init(&ca_name, &subject_alt_names)
                .context("creating the PKI")?;
            println!("created CA       {}", pki.ca_cert().display());
            println!(
                "CA private key   {}  (keep offline in production)",
                pki.ca_key().display()
            );
            println!(
                "server cert      {}  for {}",
                pki.server_cert().display(),
                subject_alt_names.join(", ")
            );
            println!("server key       {}", pki.server_key().display());
            println!("CRL              {}", pki.crl().display());
        }
        PkiCommand::Issue {
            dir,
            user,
            institution,
            role,
            days,
            force,
        } => {
            UserId::parse(&user).map_err(|e| anyhow::anyhow!("--user: {e}"))?;
            InstitutionId::parse(&institution)
                .map_err(|e| anyhow::anyhow!("--institution: {e}"))?;
            role.parse::<Role>()
                .map_err(|e| anyhow::anyhow!("--role: {e}"))?;
            if days < 1 {
                bail!("--days: must be at least 1");
            }
            let pki = PkiDirectory::new(&dir);
            if pki.client_cert(&user).exists() && !force {
                bail!(
                    "{} exists; revoke it (pki revoke --cert) and pass --force to replace it",
                    pki.client_cert(&user).display()
                );
            }
            let subject = ClientSubject {
                user: user.clone(),
                institution,
                role,
            };
            let issued = pki
                .issue_client(&subject, Validity::days(days))
                .context("issuing the client certificate")?;
            println!("certificate  {}", pki.client_cert(&user).display());
            println!("private key  {}", pki.client_key(&user).display());
            println!("fingerprint  {}", issued.fingerprint()?);
        }
        PkiCommand::Revoke { dir, cert } => {
            let pki = PkiDirectory::new(&dir);
            let pem = read_file(&cert)?;
            let serial = pki.revoke(&pem).context("revoking the certificate")?;
            println!(
                "revoked serial {} in {}",
                hex::encode(serial),
                pki.crl().display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
