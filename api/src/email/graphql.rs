//! GraphQL adapters for e-mail preferences.
use super::preferences::{self, Preferences};
use crate::{
    auth::guards::NoApiTokens,
    db::{data, RequestTx},
};
use async_graphql::{Context, InputObject, Object, Result, SimpleObject};

/// Which mail the account receives besides transactional mail (always sent).
#[derive(SimpleObject, Clone, Copy, Debug)]
pub struct EmailPreferences {
    /// The onboarding sequence (welcome, first steps, tips).
    pub onboarding: bool,
    /// Product news.
    pub product_news: bool,
}

impl From<Preferences> for EmailPreferences {
    fn from(p: Preferences) -> Self {
        EmailPreferences { onboarding: p.onboarding, product_news: p.product_news }
    }
}

/// Input of `updateEmailPreferences`: each field present is changed.
#[derive(InputObject)]
pub struct UpdateEmailPreferencesInput {
    /// The onboarding sequence.
    pub onboarding: Option<bool>,
    /// Product news.
    pub product_news: Option<bool>,
}

/// E-mail queries.
#[derive(Default)]
pub struct EmailQuery;

#[Object]
impl EmailQuery {
    /// The signed-in account's e-mail preferences.
    #[graphql(guard = "NoApiTokens")]
    async fn email_preferences(&self, ctx: &Context<'_>) -> Result<EmailPreferences> {
        let tx = data::<RequestTx>(ctx)?;
        Ok(preferences::read(tx).await?.into())
    }
}

/// E-mail mutations.
#[derive(Default)]
pub struct EmailMutation;

#[Object]
impl EmailMutation {
    /// Changes the signed-in account's e-mail preferences.
    #[graphql(guard = "NoApiTokens")]
    async fn update_email_preferences(
        &self,
        ctx: &Context<'_>,
        input: UpdateEmailPreferencesInput,
    ) -> Result<EmailPreferences> {
        let tx = data::<RequestTx>(ctx)?;
        Ok(preferences::update(tx, input.onboarding, input.product_news).await?.into())
    }
}
