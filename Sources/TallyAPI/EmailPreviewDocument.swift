/// `GET /v1/email/preview?template=NAME&contact=ID[&trigger=ID]` (E3): the email a template makes for a contact,
/// as it would be sent; `tally email preview NAME CONTACT` prints ``message``.
public struct EmailPreviewDocument: Codable, Sendable, Equatable {
    public var template: String
    public var contact: String
    /// The trigger whose id and name filled `{{trigger.id}}` and `{{trigger.name}}` (empty when none sends it).
    public var trigger: String
    /// The recipients: the contact's email address (`no-address@invalid` when it has none).
    public var to: [String]
    public var subject: String
    /// The rendered text part.
    public var text: String
    /// The rendered HTML part, when the template has one.
    public var html: String?
    /// The whole message as sent after SMTP `DATA` (headers and MIME body, CRLF line ends).
    public var message: String

    public init(
        template: String, contact: String, trigger: String, to: [String], subject: String, text: String,
        html: String?, message: String
    ) {
        self.template = template
        self.contact = contact
        self.trigger = trigger
        self.to = to
        self.subject = subject
        self.text = text
        self.html = html
        self.message = message
    }
}
