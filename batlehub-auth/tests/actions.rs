//! CI workload tokens (GitHub/Forgejo Actions) mapped by claim rules.

mod common;

use std::sync::Arc;

use batlehub_auth::{
    ActionsOidcConfig, ActionsOidcProvider, Algorithm, ClaimRule, Matcher, Provider as _, Verdict,
};
use batlehub_core::Role;
use common::{AUD, Idp, clock, creds};
use serde_json::json;

fn rule(conditions: &[(&str, &str)], role: Role, groups: &[&str]) -> ClaimRule {
    ClaimRule {
        conditions: conditions
            .iter()
            .map(|(c, p)| ((*c).to_owned(), Matcher::new(p).expect("pattern")))
            .collect(),
        role,
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
    }
}

fn provider(idp: &Idp, clock: &batlehub_core::FakeClock) -> ActionsOidcProvider {
    ActionsOidcProvider::new(
        ActionsOidcConfig {
            name: "github-actions".into(),
            issuer: idp.issuer(),
            audiences: vec![AUD.into()],
            algorithms: vec![Algorithm::ES256],
            rules: vec![
                rule(
                    &[
                        ("repository", "my-org/*"),
                        ("ref", "re:^refs/tags/v[0-9]+(\\.[0-9]+)*$"),
                    ],
                    Role::Admin,
                    &["release/{repository}", "releasers"],
                ),
                rule(
                    &[("repository_owner", "my-org"), ("ref", "refs/heads/*")],
                    Role::User,
                    &["ci/{repository}", "ci/{missing_claim}"],
                ),
            ],
            ..ActionsOidcConfig::default()
        },
        Arc::new(clock.clone()),
    )
    .expect("provider")
}

#[tokio::test]
async fn first_matching_rule_maps_role_and_groups() {
    let idp = Idp::start().await;
    let clock = clock();
    let ci = provider(&idp, &clock);
    let workload = |repo: &str, git_ref: &str| {
        idp.key.sign(&idp.claims(
            &clock,
            json!({
                "sub": format!("repo:{repo}:ref:{git_ref}"),
                "repository": repo,
                "repository_owner": repo.split('/').next(),
                "ref": git_ref,
                "run_id": 1234,
            }),
        ))
    };

    // Tag push: the regex rule, first in order, wins.
    let Verdict::Mine(p) = ci
        .identify(creds(&workload("my-org/app", "refs/tags/v1.2.3")))
        .await
    else {
        panic!("mine")
    };
    assert_eq!(p.id, "my-org/app");
    assert_eq!(p.role, Role::Admin);
    assert_eq!(
        p.groups,
        [
            "github-actions:release/my-org/app",
            "github-actions:releasers"
        ]
    );
    assert_eq!(p.provider, "github-actions");

    // Branch build: the glob rule; the template naming an absent claim is dropped.
    let Some(Verdict::Mine(p)) =
        ci.identify_cached(&creds(&workload("my-org/lib", "refs/heads/main")))
    else {
        panic!("mine on the fast path")
    };
    assert_eq!(p.role, Role::User);
    assert_eq!(p.groups, ["github-actions:ci/my-org/lib"]);

    // A tag that the regex refuses falls to the second rule only if it matches: it does not.
    assert_eq!(
        ci.identify(creds(&workload("my-org/app", "refs/tags/latest")))
            .await,
        Verdict::Invalid("no claim-mapping rule matches this workload".into())
    );
    // Another organisation: no rule.
    assert_eq!(
        ci.identify(creds(&workload("evil-org/app", "refs/heads/main")))
            .await,
        Verdict::Invalid("no claim-mapping rule matches this workload".into())
    );
    // A lookalike owner is not a glob match of the whole value.
    assert_eq!(
        ci.identify(creds(&workload("my-org-evil/app", "refs/heads/main")))
            .await,
        Verdict::Invalid("no claim-mapping rule matches this workload".into())
    );
}

#[tokio::test]
async fn principal_falls_back_to_sub_and_checks_still_apply() {
    let idp = Idp::start().await;
    let clock = clock();
    let ci = provider(&idp, &clock);
    // No `repository`, but the conditions only need repository_owner and ref.
    let token = idp.key.sign(&idp.claims(
        &clock,
        json!({"sub": "repo:my-org/x:ref:refs/heads/dev", "repository_owner": "my-org", "ref": "refs/heads/dev"}),
    ));
    let Verdict::Mine(p) = ci.identify(creds(&token)).await else {
        panic!("mine")
    };
    assert_eq!(p.id, "repo:my-org/x:ref:refs/heads/dev");
    assert!(p.groups.is_empty(), "both templates name absent claims");

    // Wrong audience is refused before any rule.
    let token = idp.key.sign(&idp.claims(
        &clock,
        json!({"aud": "https://github.com/my-org", "repository_owner": "my-org", "ref": "refs/heads/dev"}),
    ));
    assert_eq!(
        ci.identify(creds(&token)).await,
        Verdict::Invalid("token audience is not accepted".into())
    );
    // Other issuers are left to other providers.
    let token = idp.key.sign(&idp.claims(
        &clock,
        json!({"iss": "https://token.actions.githubusercontent.com"}),
    ));
    assert_eq!(ci.identify(creds(&token)).await, Verdict::NotMine);
}

#[test]
fn rules_are_required_and_conditional() {
    let clock: Arc<dyn batlehub_core::Clock> = Arc::new(clock());
    let base = ActionsOidcConfig {
        audiences: vec![AUD.into()],
        rules: vec![rule(&[("repository", "my-org/*")], Role::User, &[])],
        ..ActionsOidcConfig::github()
    };
    assert!(ActionsOidcProvider::new(base.clone(), clock.clone()).is_ok());
    let no_rules = ActionsOidcConfig {
        rules: vec![],
        ..base.clone()
    };
    assert!(ActionsOidcProvider::new(no_rules, clock.clone()).is_err());
    let catch_all = ActionsOidcConfig {
        rules: vec![rule(&[], Role::User, &[])],
        ..base
    };
    let e = ActionsOidcProvider::new(catch_all, clock).expect_err("catch-all refused");
    assert!(e.to_string().contains("no condition"), "{e}");
}
