//! `teleconsult whoami` and `teleconsult specialists search`: who the broker takes the
//! caller for, and who can be consulted.

use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;
use teleconsult::proto::v1 as pb;

use super::client::{ConnectionArgs, finish, out, print_json, print_table};
use super::views;

/// A language a specialist consults in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LanguageArg {
    Mandarin,
    Tibetan,
    English,
}

impl LanguageArg {
    pub fn to_proto(language: Option<LanguageArg>) -> i32 {
        (match language {
            None => pb::Language::Unspecified,
            Some(LanguageArg::Mandarin) => pb::Language::Mandarin,
            Some(LanguageArg::Tibetan) => pb::Language::Tibetan,
            Some(LanguageArg::English) => pb::Language::English,
        }) as i32
    }
}

#[derive(Debug, Args)]
pub struct WhoAmIArgs {
    #[command(flatten)]
    connection: ConnectionArgs,
}

#[derive(Debug, Subcommand)]
pub enum SpecialistsCommand {
    /// Specialists by specialty, institution, language or name (all pages).
    Search {
        /// A specialty code, e.g. cardiology or high-altitude-medicine.
        #[arg(long)]
        specialty: Option<String>,
        /// A consulting institution's id, e.g. zju2-hospital.
        #[arg(long)]
        institution: Option<String>,
        /// A language the specialist consults in.
        #[arg(long, value_enum)]
        language: Option<LanguageArg>,
        /// Part of the Chinese or English name.
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        connection: ConnectionArgs,
    },
}

pub async fn who_am_i(arguments: WhoAmIArgs) -> ExitCode {
    finish(show_who_am_i(arguments).await)
}

async fn show_who_am_i(arguments: WhoAmIArgs) -> anyhow::Result<ExitCode> {
    let mut broker = arguments.connection.connect().await?;
    let answer = broker
        .directory
        .who_am_i(pb::WhoAmIRequest {})
        .await?
        .into_inner();
    if broker.json {
        print_json(&views::who_am_i(&answer));
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(principal) = &answer.principal {
        out!(
            "{} ({}) at {}",
            principal.user_id,
            views::role(principal.role),
            principal.institution_id
        );
    }
    if let Some(user) = &answer.user {
        out!(
            "name          {} {}",
            user.display_name_zh,
            user.display_name_en
        );
    }
    if let Some(institution) = &answer.institution {
        out!(
            "institution   {} {}",
            institution.name_zh,
            institution.name_en
        );
    }
    if let Some(principal) = &answer.principal {
        out!("certificate   sha256:{}", principal.certificate_fingerprint);
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn run(command: SpecialistsCommand) -> ExitCode {
    finish(search(command).await)
}

async fn search(command: SpecialistsCommand) -> anyhow::Result<ExitCode> {
    let SpecialistsCommand::Search {
        specialty,
        institution,
        language,
        name,
        connection,
    } = command;
    let mut broker = connection.connect().await?;
    let mut request = pb::SearchSpecialistsRequest {
        specialty: specialty.unwrap_or_default(),
        institution_id: institution.unwrap_or_default(),
        language: LanguageArg::to_proto(language),
        name_contains: name.unwrap_or_default(),
        page: Some(pb::PageRequest {
            page_size: 500,
            page_token: String::new(),
        }),
    };
    let mut found = Vec::new();
    loop {
        let page = broker
            .directory
            .search_specialists(request.clone())
            .await?
            .into_inner();
        found.extend(page.specialists);
        if page.next_page_token.is_empty() {
            break;
        }
        if let Some(p) = request.page.as_mut() {
            p.page_token = page.next_page_token;
        }
    }
    if broker.json {
        let specialists: Vec<_> = found.iter().map(views::specialist).collect();
        print_json(&json!({ "specialists": specialists }));
        return Ok(ExitCode::SUCCESS);
    }
    if found.is_empty() {
        out!("no specialists match");
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = found.iter().map(specialist_row).collect();
    print_table(
        &[
            "DOCTOR",
            "NAME",
            "INSTITUTION",
            "SPECIALTIES",
            "LANGUAGES",
            "ON CALL",
            "SLOT",
        ],
        &rows,
    );
    Ok(ExitCode::SUCCESS)
}

fn specialist_row(s: &pb::Specialist) -> Vec<String> {
    let languages: Vec<String> = s.languages.iter().map(|&l| views::language(l)).collect();
    let minutes = if s.slot_minutes == 0 {
        30
    } else {
        s.slot_minutes
    };
    vec![
        s.user_id.clone(),
        format!("{} {}", s.display_name_zh, s.display_name_en),
        s.institution_id.clone(),
        s.specialties.join(","),
        languages.join(","),
        if s.on_call { "yes" } else { "no" }.to_owned(),
        format!("{minutes} min"),
    ]
}
