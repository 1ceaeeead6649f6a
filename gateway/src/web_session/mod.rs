//! Browser sessions, as both the proxy and the login portal use them: the
//! session cookies ([`cookies`]), which hosts count as this site for return URLs
//! and CSRF ([`site`]), and the token pair behind the cookies, rotated through
//! the auth API's refresh code ([`rotation`]).

pub(crate) mod cookies;
pub(crate) mod rotation;
pub(crate) mod site;
