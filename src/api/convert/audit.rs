//! Audit requests to store queries.

use super::scheduling::{consultation_id, instant};
use super::{Result, institution_id, optional, user_id};
use crate::audit::Outcome;
use crate::domain::directory::{PageSize, Role};
use crate::domain::{InvalidField, field};
use crate::proto::v1 as pb;
use crate::store::AuditQuery;

fn outcome(value: i32) -> Result<Option<Outcome>> {
    match pb::Outcome::try_from(value) {
        Ok(pb::Outcome::Unspecified) => Ok(None),
        Ok(pb::Outcome::Ok) => Ok(Some(Outcome::Ok)),
        Ok(pb::Outcome::Denied) => Ok(Some(Outcome::Denied)),
        Ok(pb::Outcome::Invalid) => Ok(Some(Outcome::Invalid)),
        Ok(pb::Outcome::Error) => Ok(Some(Outcome::Error)),
        Err(_) => Err(InvalidField::new(
            "outcome",
            format!("unknown outcome {value}"),
        )),
    }
}

/// `prefix` names the request message in field paths (`filter.` inside an export).
pub fn query(request: &pb::QueryAuditRequest, prefix: &str) -> Result<AuditQuery> {
    let name = |field: &str| format!("{prefix}{field}");
    let from = request
        .from
        .as_ref()
        .map(|t| instant(t, &name("from")))
        .transpose()?;
    let to = request
        .to
        .as_ref()
        .map(|t| instant(t, &name("to")))
        .transpose()?;
    if let (Some(from), Some(to)) = (from, to)
        && from >= to
    {
        return Err(InvalidField::new(name("to"), "must be after from"));
    }
    let action = crate::domain::text(&request.action, 100, true).map_err(field(&name("action")))?;
    let page = request.page.clone().unwrap_or_default();
    let after_seq = optional(&page.page_token, |token| {
        token.parse::<u64>().map_err(|_| {
            InvalidField::new(name("page.page_token"), "is not a token this server gave")
        })
    })?;
    Ok(AuditQuery {
        from,
        to,
        institution: optional(&request.institution_id, |v| {
            institution_id(v, &name("institution_id")).map(|id| id.to_string())
        })?,
        user: optional(&request.user_id, |v| {
            user_id(v, &name("user_id")).map(|id| id.to_string())
        })?,
        role: optional(&request.role, |v| {
            v.parse::<Role>()
                .map(|role| role.to_string())
                .map_err(field(&name("role")))
        })?,
        target: optional(&request.consultation_id, |v| {
            consultation_id(v, &name("consultation_id")).map(|id| format!("consultation:{id}"))
        })?,
        action: (!action.is_empty()).then_some(action),
        outcome: outcome(request.outcome)
            .map_err(|e| InvalidField::new(name("outcome"), e.problem))?,
        newest_first: request.newest_first,
        after_seq,
        limit: PageSize::new(page.page_size),
    })
}
