import Foundation
public import TallyAPI
public import TallyCore
import TallyDelivery

/// Builds the email a trigger sends (E1, E3) from its template and the contact: the delivery sends it, and
/// `GET /v1/email/preview` shows it.
struct EmailComposer: Sendable {
    let templates: EmailTemplates
    let from: String

    init(configuration: Configuration) {
        templates = EmailTemplates(directory: configuration.templatesDirectory)
        from = configuration.smtp.from
    }

    /// The message for outbox entry `key` (its `Message-ID` is derived from the key, so that a resent message is
    /// recognisable), rendered from `template` over `context`.
    func message(
        key: String, template name: String, to recipients: [String], context: EmailTemplateContext
    )
        throws(EmailTemplateError) -> EmailMessage
    {
        let rendered = try templates.template(name).render(context)
        return EmailMessage(
            from: from, to: recipients, subject: rendered.subject, body: rendered.text, html: rendered.html,
            headers: [
                ("Message-ID", "<\(OutboxDelivery.messageID(key))@tally>"), ("X-Tally-Idempotency-Key", key),
                ("X-Tally-Template", name),
            ])
    }
}

extension TallyEngine {
    /// E3: the email that template `template` makes for `contact`, as it would be sent: rendered as sent by
    /// `trigger` (by default the first trigger of the newest rules that sends the template; its id and name fill
    /// `{{trigger.*}}`), to the contact's email address. Nothing is sent and nothing is appended.
    /// Throws ``EngineError``: not found for an unknown contact or trigger, invalid for a template that is
    /// missing or does not parse.
    public func previewEmail(
        template: String, contact id: String, trigger triggerID: String? = nil
    ) async throws
        -> EmailPreviewDocument
    {
        let (state, rules) = try await blocking.run {
            (try self.projections.read { txn in try txn.contact(id) }, try self.latestRules())
        }
        guard let state else { throw EngineError(.notFound, "unknown contact \"\(id)\"") }
        return try Self.previewEmail(
            template: template, contact: id, state: state, rules: rules, trigger: triggerID,
            configuration: configuration)
    }

    /// ``previewEmail(template:contact:trigger:)`` for a contact's `state` under `rules` (a node's, or a cluster's).
    public static func previewEmail(
        template: String, contact id: String, state: ContactState, rules: RuleSet, trigger triggerID: String?,
        configuration: Configuration
    ) throws(EngineError) -> EmailPreviewDocument {
        let sending = rules.triggers.first { trigger in
            trigger.events.contains { event in
                switch event.kind {
                case .emailSend(let email), .emailSendToUser(let email, _, _): email == template
                default: false
                }
            }
        }
        var trigger = (id: sending?.id ?? "", name: sending?.name ?? "")
        var eventID = sending?.events.first?.id ?? "preview"
        if let triggerID {
            guard let named = rules.triggers.first(where: { $0.id == triggerID }) else {
                throw EngineError(.notFound, "no trigger \"\(triggerID)\" in the newest rules", field: "trigger")
            }
            trigger = (named.id, named.name)
            eventID = named.events.first?.id ?? "preview"
        }
        let composer = EmailComposer(configuration: configuration)
        let recipient = state.email ?? "no-address@invalid"
        let message: EmailMessage
        do throws(EmailTemplateError) {
            message = try composer.message(
                key: "\(id)/\(trigger.id)/\(eventID)", template: template, to: [recipient],
                context: EmailTemplateContext(
                    contact: ContactDocument(id: id, state: state), triggerID: trigger.id, triggerName: trigger.name))
        } catch {
            throw EngineError(.invalid, error.description, field: "template")
        }
        return EmailPreviewDocument(
            template: template, contact: id, trigger: trigger.id, to: message.to, subject: message.subject,
            text: message.body, html: message.html,
            message: message.formatted(defaultSender: composer.from, now: wallClockMillis() / 1000))
    }
}
