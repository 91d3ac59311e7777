//! The vocabulary of marketplace accounts.
use crate::model::vocabulary;
use async_graphql::Enum;

vocabulary! {
    /// A marketplace.
    #[derive(Enum)]
    pub enum MarketplacePlatform as "marketplace" {
        /// Vinted.
        Vinted = "vinted",
        /// eBay.
        Ebay = "ebay",
        /// Leboncoin.
        Leboncoin = "leboncoin",
        /// Etsy.
        Etsy = "etsy",
        /// Depop.
        Depop = "depop",
    }
}

vocabulary! {
    /// Whether an account can be used.
    #[derive(Enum)]
    pub enum MarketplaceAccountStatus as "marketplace account status" {
        /// Usable.
        Connected = "connected",
        /// Disconnected by the user; credentials erased.
        Disconnected = "disconnected",
        /// The marketplace refused the credentials.
        Error = "error",
    }
}
