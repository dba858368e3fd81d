//! The trussed side of the virtual card: our own `Platform` (RNG seeded from the OS, not the
//! constant seed of `trussed::virt::with_platform`), the backend dispatch piv-authenticator
//! needs (trussed-auth + trussed-staging's chunked, hpke and wrap-key-to-file), and a syscall
//! that runs the trussed service synchronously in the calling thread, so nothing polls.

use std::cell::RefCell;
use std::rc::Rc;

use littlefs2_core::{path, PathBuf};
use piv_authenticator::{Authenticator, Options};
use rand::rngs::OsRng;
use trussed::backend::BackendId;
use trussed::pipe::{ServiceEndpoint, TrussedChannel};
use trussed::platform::{Platform, Syscall};
use trussed::serde_extensions::{ExtensionDispatch, ExtensionId, ExtensionImpl};
use trussed::service::{Service, ServiceResources};
use trussed::types::{Context, CoreContext};
use trussed::virt::{Store, UserInterface};
use trussed::ClientImplementation;
use trussed_auth::AuthExtension;
use trussed_auth_backend::{AuthBackend, AuthContext, FilesystemLayout};
use trussed_chunked::ChunkedExtension;
use trussed_core::api::{reply, request};
use trussed_core::types::Location;
use trussed_core::Error;
use trussed_hpke::HpkeExtension;
use trussed_staging::{StagingBackend, StagingContext};
use trussed_wrap_key_to_file::WrapKeyToFileExtension;

/// Client id of the PIV app. It names the app's directory inside the card's storage, so it
/// must never change or Directory-backed cards lose their state.
const CLIENT_ID: &littlefs2_core::Path = path!("piv");

/// trussed platform: OS randomness, trussed's virtual store (RAM or file), no user presence.
pub(crate) struct CardPlatform<'s> {
    // trussed draws a 32-byte seed from here once per service start and mixes it with the
    // seed it keeps in the internal storage.
    rng: OsRng,
    store: Store<'s>,
    ui: UserInterface,
}

impl<'s> Platform for CardPlatform<'s> {
    type R = OsRng;
    type S = Store<'s>;
    type UI = UserInterface;

    fn rng(&mut self) -> &mut Self::R {
        &mut self.rng
    }

    fn store(&self) -> Self::S {
        self.store
    }

    fn user_interface(&mut self) -> &mut Self::UI {
        &mut self.ui
    }
}

/// Custom backends, tried in the order of [`BACKENDS`] before trussed's core.
#[derive(Debug, Clone, Copy)]
pub(crate) enum CardBackend {
    Auth,
    Staging,
}

const BACKENDS: &[BackendId<CardBackend>] = &[
    BackendId::Custom(CardBackend::Staging),
    BackendId::Custom(CardBackend::Auth),
    BackendId::Core,
];

/// Extension ids as seen by the client; only meaningful inside this runner.
#[derive(Debug, Clone, Copy)]
pub(crate) enum CardExtension {
    Auth,
    Chunked,
    Hpke,
    WrapKeyToFile,
}

impl From<CardExtension> for u8 {
    fn from(extension: CardExtension) -> Self {
        match extension {
            CardExtension::Auth => 0,
            CardExtension::Chunked => 1,
            CardExtension::Hpke => 2,
            CardExtension::WrapKeyToFile => 3,
        }
    }
}

impl TryFrom<u8> for CardExtension {
    type Error = Error;

    fn try_from(id: u8) -> Result<Self, Error> {
        match id {
            0 => Ok(Self::Auth),
            1 => Ok(Self::Chunked),
            2 => Ok(Self::Hpke),
            3 => Ok(Self::WrapKeyToFile),
            _ => Err(Error::FunctionNotSupported),
        }
    }
}

impl ExtensionId<AuthExtension> for CardDispatch {
    type Id = CardExtension;
    const ID: CardExtension = CardExtension::Auth;
}

impl ExtensionId<ChunkedExtension> for CardDispatch {
    type Id = CardExtension;
    const ID: CardExtension = CardExtension::Chunked;
}

impl ExtensionId<HpkeExtension> for CardDispatch {
    type Id = CardExtension;
    const ID: CardExtension = CardExtension::Hpke;
}

impl ExtensionId<WrapKeyToFileExtension> for CardDispatch {
    type Id = CardExtension;
    const ID: CardExtension = CardExtension::WrapKeyToFile;
}

/// Routes extension requests to the backend implementing them.
pub(crate) struct CardDispatch {
    auth: AuthBackend,
    staging: StagingBackend,
}

#[derive(Default)]
pub(crate) struct CardDispatchContext {
    auth: AuthContext,
    staging: StagingContext,
}

impl CardDispatch {
    fn new() -> Self {
        Self {
            // PINs live in the internal area, like on the hardware token. No hardware key:
            // a virtual card has nothing to bind its PIN-derived keys to.
            auth: AuthBackend::new(Location::Internal, FilesystemLayout::V0),
            staging: StagingBackend::new(),
        }
    }
}

impl ExtensionDispatch for CardDispatch {
    type BackendId = CardBackend;
    type Context = CardDispatchContext;
    type ExtensionId = CardExtension;

    // Neither backend overrides core requests; the default (RequestNotAvailable) lets the
    // service fall through to trussed's core.

    fn extension_request<P: Platform>(
        &mut self,
        backend: &CardBackend,
        extension: &CardExtension,
        ctx: &mut Context<CardDispatchContext>,
        request: &request::SerdeExtension,
        resources: &mut ServiceResources<P>,
    ) -> Result<reply::SerdeExtension, Error> {
        let core = &mut ctx.core;
        match (backend, extension) {
            (CardBackend::Auth, CardExtension::Auth) => {
                ExtensionImpl::<AuthExtension>::extension_request_serialized(
                    &mut self.auth,
                    core,
                    &mut ctx.backends.auth,
                    request,
                    resources,
                )
            }
            (CardBackend::Staging, CardExtension::Chunked) => {
                ExtensionImpl::<ChunkedExtension>::extension_request_serialized(
                    &mut self.staging,
                    core,
                    &mut ctx.backends.staging,
                    request,
                    resources,
                )
            }
            (CardBackend::Staging, CardExtension::Hpke) => {
                ExtensionImpl::<HpkeExtension>::extension_request_serialized(
                    &mut self.staging,
                    core,
                    &mut ctx.backends.staging,
                    request,
                    resources,
                )
            }
            (CardBackend::Staging, CardExtension::WrapKeyToFile) => {
                ExtensionImpl::<WrapKeyToFileExtension>::extension_request_serialized(
                    &mut self.staging,
                    core,
                    &mut ctx.backends.staging,
                    request,
                    resources,
                )
            }
            // Wrong backend for this extension: the service tries the next one.
            _ => Err(Error::RequestNotAvailable),
        }
    }
}

/// Something that answers the request a client just queued.
trait ProcessRequests {
    fn process(&mut self);
}

struct ServiceState<'s, 'c> {
    service: Service<CardPlatform<'s>, CardDispatch>,
    endpoints: [ServiceEndpoint<'c, CardBackend, CardDispatchContext>; 1],
}

impl ProcessRequests for ServiceState<'_, '_> {
    fn process(&mut self) {
        self.service.process(&mut self.endpoints);
    }
}

/// The client's "syscall": answer the request right here, in the card thread. The reply is
/// ready when the client polls, so the card needs no service thread and never spins.
pub(crate) struct InlineSyscall<'a>(Rc<RefCell<dyn ProcessRequests + 'a>>);

impl Syscall for InlineSyscall<'_> {
    fn syscall(&mut self) {
        match self.0.try_borrow_mut() {
            Ok(mut service) => service.process(),
            // Backends never call back into a client, so this is a broken invariant. Panicking
            // (caught by the card thread, which then power-cycles the card) beats the client
            // spinning forever on a request nobody will answer.
            Err(_) => panic!("re-entrant trussed syscall in the virtual card"),
        }
    }
}

pub(crate) type CardClient<'a> = ClientImplementation<'a, InlineSyscall<'a>, CardDispatch>;
pub(crate) type CardApp<'a> = Authenticator<CardClient<'a>>;

/// Powers the card up on `store`: a fresh trussed service, client and PIV `Authenticator`
/// (nothing volatile survives from an earlier session), then runs `session` with it.
pub(crate) fn with_card<R>(store: Store<'_>, session: impl FnOnce(&mut CardApp<'_>) -> R) -> R {
    let platform = CardPlatform {
        rng: OsRng,
        store,
        ui: UserInterface::new(),
    };
    let service = Service::with_dispatch(platform, CardDispatch::new());
    let channel = TrussedChannel::new();
    let Some((requester, responder)) = channel.split() else {
        // A fresh channel always splits; if not, trussed changed under us.
        panic!("fresh trussed channel did not split");
    };
    let endpoint = ServiceEndpoint::new(
        responder,
        CoreContext::new(PathBuf::from(CLIENT_ID)),
        BACKENDS,
    );
    let state: Rc<RefCell<dyn ProcessRequests + '_>> = Rc::new(RefCell::new(ServiceState {
        service,
        endpoints: [endpoint],
    }));
    let client = ClientImplementation::new(requester, InlineSyscall(state), None);
    // No fixed uuid: piv-authenticator draws the CHUID GUID from trussed's RNG when it
    // initialises a blank card (and again after a factory reset); that RNG is seeded from
    // the OS here, so every card gets its own GUID, stored with the card's state.
    let mut card = Authenticator::new(client, Options::default());
    session(&mut card)
}
