//! [`CommitAfter`]: the future a framework's session middleware returns for a request.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
};

use crate::{ResponseHeaders, Session, SessionData, SessionError, SessionStorage};

/// A commit that needs the store (its state is over a kilobyte, so it is boxed only then).
type Committing = Pin<Box<dyn Future<Output = Result<ResponseHeaders, SessionError>> + Send>>;

pin_project_lite::pin_project! {
    /// A request's handler, then its session's commit: what a framework's middleware returns
    /// (the axum and actix-web integrations both do), so that the commit is done the same way
    /// everywhere.
    ///
    /// Made with [`CommitAfter::new`] from the handler's future, the middleware's own state
    /// (`owner`, handed back at the end for building the response) and the request's session.
    /// When the handler answers, the commit is done at once if it needs no I/O
    /// ([`SessionStorage::commit_response_now`]); otherwise it is boxed and awaited. A named
    /// type, not a boxed one: a request whose commit needs no store (an untouched session, a
    /// read, a cookie-only session) allocates no future of its own.
    ///
    /// Resolves to the handler's error, or to `(owner, response, committed)`: add the
    /// `committed` headers to the response, or answer the error instead.
    pub struct CommitAfter<F, L, T, R> {
        #[pin]
        phase: Phase<F, L, T, R>,
    }
}

pin_project_lite::pin_project! {
    #[project = PhaseProjection]
    enum Phase<F, L, T, R> {
        // The handler runs; `owner` and `session` are taken when it answers.
        Handler {
            #[pin]
            future: F,
            owner: Option<L>,
            storage_of: fn(&L) -> &SessionStorage<T>,
            session: Option<Session<T>>,
        },
        // The commit writes to the store.
        Commit {
            committing: Committing,
            done: Option<(L, R)>,
        },
    }
}

impl<F, L, T, R> CommitAfter<F, L, T, R> {
    /// Runs `future` (the handler's), then commits `session` to the storage that
    /// `storage_of(&owner)` names.
    pub fn new(
        future: F,
        owner: L,
        storage_of: fn(&L) -> &SessionStorage<T>,
        session: Session<T>,
    ) -> Self {
        Self {
            phase: Phase::Handler {
                future,
                owner: Some(owner),
                storage_of,
                session: Some(session),
            },
        }
    }
}

impl<F, L, T, R, E> Future for CommitAfter<F, L, T, R>
where
    F: Future<Output = Result<R, E>>,
    T: SessionData,
{
    type Output = Result<(L, R, Result<ResponseHeaders, SessionError>), E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let (committing, done) = match self.as_mut().project().phase.project() {
            PhaseProjection::Handler {
                future,
                owner,
                storage_of,
                session,
            } => {
                let response = ready!(future.poll(cx))?;
                let (Some(owner), Some(session)) = (owner.take(), session.take()) else {
                    panic!("CommitAfter polled after completion");
                };
                let storage = storage_of(&owner);
                if let Some(committed) = storage.commit_response_now(&session) {
                    return Poll::Ready(Ok((owner, response, committed)));
                }
                let storage = storage.clone();
                let committing: Committing =
                    Box::pin(async move { storage.commit_response(&session).await });
                (committing, (owner, response))
            }
            PhaseProjection::Commit { committing, done } => {
                let committed = ready!(committing.as_mut().poll(cx));
                let Some((owner, response)) = done.take() else {
                    panic!("CommitAfter polled after completion");
                };
                return Poll::Ready(Ok((owner, response, committed)));
            }
        };
        self.as_mut().project().phase.set(Phase::Commit {
            committing,
            done: Some(done),
        });
        self.poll(cx)
    }
}
