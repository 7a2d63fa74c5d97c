//! What people see in a browser on the connector door: the invite, sign-in and consent pages
//! with their passkey ceremonies (`signin`), the approval pages (`approve`), and the page
//! helpers and script they share (`pages`).

pub mod approve;
pub mod pages;
pub mod signin;
