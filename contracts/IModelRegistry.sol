// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/**
 * @dev Interface of the Hallmark ModelRegistry: provenance of quantized edge models and the shop
 * that sells their licences.
 *
 * Vendors register models (terms and lineage), publish versions as the root digest of an OpenSSF
 * Model Signing manifest (EIP-712 signed, so a relayer may submit), and sell licences. Every
 * payment is split at purchase time into credits: a capped platform fee ({PlatformFeeCredited}),
 * then a cascade along the model's lineage ({RoyaltyCredited}), where each model keeps
 * `10000 - upstreamBps` basis points of what reaches it for its vendor and passes `upstreamBps` to
 * its parent. Payment above the price is credited back to the payer ({OverpaymentCredited}).
 * Credits are withdrawn by their payees (pull payments), and the credits of one purchase sum to
 * the price to the wei, so a ledger can be rebuilt from these events alone.
 *
 * A licence is an expiry and a number of seats (the devices the licensee may run the model on).
 * {purchaseLicense} buys one seat; {purchaseLicenseSeats} buys several at once, for the price
 * times the seats, split like one sale of that total.
 *
 * The external names and selectors below are an interface outside tools rely on: keep them.
 * Ownership ({Ownable2Step}) and the EIP-712 domain ({IERC5267-eip712Domain}) are OpenZeppelin's.
 */
interface IModelRegistry {
    // ------------------------------------------------------------------ events

    /**
     * @dev Emitted when `vendor` registers the model `modelId`.
     * @param modelId `keccak256(abi.encode(vendor, slugHash))`, see {computeModelId}.
     * @param vendor The model's vendor: who publishes its versions and is paid for its sales.
     * @param parentId The model it derives from, or zero for a root model.
     * @param slugHash keccak256 of the model's UTF-8 slug.
     * @param price Licence price in wei.
     * @param licenseDuration Licence length in seconds; 0 means perpetual.
     * @param upstreamBps Share (basis points) of what reaches this model that flows to the parent.
     */
    event ModelCreated(
        bytes32 indexed modelId,
        address indexed vendor,
        bytes32 indexed parentId,
        bytes32 slugHash,
        uint96 price,
        uint64 licenseDuration,
        uint16 upstreamBps
    );

    /**
     * @dev Emitted when the vendor changes a model's licence terms with {setTerms}.
     * @param modelId The model.
     * @param price The new licence price in wei.
     * @param licenseDuration The new licence length in seconds; 0 means perpetual.
     * @param listed Whether the model can be bought.
     */
    event TermsChanged(bytes32 indexed modelId, uint96 price, uint64 licenseDuration, bool listed);

    /**
     * @dev Emitted when version `version` of `modelId` is published (directly or by signature).
     * @param modelId The model.
     * @param version The version number (1, 2, 3 ... per model).
     * @param rootDigest The root digest of the version's OMS manifest (SHA-256 over the file digests).
     * @param metadataDigest SHA-256 of the version's canonical metadata JSON; kept in this event only.
     * @param signer Who authorised it: the model's vendor.
     */
    event VersionPublished(
        bytes32 indexed modelId, uint32 indexed version, bytes32 rootDigest, bytes32 metadataDigest, address indexed signer
    );

    /**
     * @dev Emitted when the vendor revokes a published version with {revokeVersion}.
     * @param modelId The model.
     * @param version The revoked version.
     * @param reason A short reason code chosen by the vendor.
     */
    event VersionRevoked(bytes32 indexed modelId, uint32 indexed version, bytes32 reason);

    /**
     * @dev Emitted by every purchase, before the credits it makes ({PlatformFeeCredited},
     * {RoyaltyCredited}, {OverpaymentCredited}, in that order, in the same transaction).
     * @param modelId The model licensed.
     * @param licensee Who holds the licence.
     * @param payer Who paid (the caller).
     * @param price The price paid, in wei (without any overpayment): the model's price times the
     * seats bought.
     * @param expiresAt The licence's new expiry (unix seconds); {PERPETUAL} for a perpetual licence.
     * @param seats The seats the licensee holds after the purchase (not the seats bought: a perpetual
     * licence adds them to those held).
     */
    event LicensePurchased(
        bytes32 indexed modelId,
        address indexed licensee,
        address indexed payer,
        uint256 price,
        uint64 expiresAt,
        uint32 seats
    );

    /**
     * @dev Emitted when a purchase credits the platform fee. At most one per purchase, first of its
     * credits, and none when the fee rounds to zero. The platform's share of a sale is credited by
     * this event only, never by {RoyaltyCredited}.
     * @param recipient The platform fee recipient at the time of the purchase.
     * @param modelId The model bought.
     * @param amount The fee in wei: `price * platformFeeBps / 10000`, floored.
     */
    event PlatformFeeCredited(address indexed recipient, bytes32 indexed modelId, uint256 amount);

    /**
     * @dev Emitted when a purchase credits a model's vendor: the bought model's vendor, or the
     * vendor of an ancestor it derives from. One per lineage position paid; zero amounts omitted.
     * @param payee The vendor credited.
     * @param modelId The model whose position earned it (the bought model or an ancestor).
     * @param amount The credit in wei.
     */
    event RoyaltyCredited(address indexed payee, bytes32 indexed modelId, uint256 amount);

    /**
     * @dev Emitted when a purchase pays more than the price: the excess is credited back to the
     * payer (withdrawable like a royalty).
     * @param payer Who paid.
     * @param modelId The model bought.
     * @param amount The excess in wei.
     */
    event OverpaymentCredited(address indexed payer, bytes32 indexed modelId, uint256 amount);

    /**
     * @dev Emitted when `payee` withdraws its whole credit with {withdraw}.
     * @param payee Who withdrew.
     * @param amount The wei sent.
     */
    event Withdrawn(address indexed payee, uint256 amount);

    /**
     * @dev Emitted when the platform fee is set, at deployment and by {setPlatformFee}.
     * @param bps The fee in basis points, at most {MAX_PLATFORM_FEE_BPS}.
     * @param recipient Who is credited the fee of the following sales.
     */
    event PlatformFeeChanged(uint16 bps, address indexed recipient);

    /**
     * @dev Emitted when a receipt operator anchors a batch of download receipts with {anchorReceipts}.
     * @param batchId The batch's number, from 1 in anchoring order; read it back with {receiptBatch}.
     * @param root Root of the batch's OpenZeppelin StandardMerkleTree of receipts (docs/recorder.md).
     * @param count How many receipts (leaves) the tree holds.
     */
    event ReceiptsAnchored(uint64 indexed batchId, bytes32 root, uint32 count);

    /**
     * @dev Emitted when the owner grants or withdraws the receipt-operator role ({setReceiptOperator}).
     * @param operator The account.
     * @param allowed Whether it may call {anchorReceipts} from now on.
     */
    event ReceiptOperatorChanged(address indexed operator, bool allowed);

    // ------------------------------------------------------------------ errors

    /**
     * @dev No model has the id `modelId`.
     * @param modelId The id asked for.
     */
    error UnknownModel(bytes32 modelId);

    /**
     * @dev The vendor already registered a model with this slug.
     * @param modelId The id that exists.
     */
    error ModelAlreadyExists(bytes32 modelId);

    /**
     * @dev Only the model's vendor may do this.
     * @param modelId The model.
     * @param caller Who tried.
     */
    error NotModelVendor(bytes32 modelId, address caller);

    /**
     * @dev `upstreamBps` is above 10000, or not 0 for a root model (nobody upstream to pay).
     * @param upstreamBps The value given.
     */
    error InvalidUpstreamBps(uint16 upstreamBps);

    /**
     * @dev The parent's lineage is already {MAX_LINEAGE_DEPTH} deep.
     * @param parentId The parent given.
     * @param parentDepth The parent's depth (ancestors above it).
     */
    error LineageTooDeep(bytes32 parentId, uint8 parentDepth);

    /**
     * @dev The signature's deadline has passed.
     * @param deadline The deadline signed (unix seconds).
     */
    error ExpiredSignature(uint256 deadline);

    /**
     * @dev The EIP-712 signature recovers to someone other than the vendor (wrong key, another
     * chain or contract, another nonce or version).
     * @param signer The address recovered.
     * @param vendor The address that had to sign.
     */
    error InvalidSigner(address signer, address vendor);

    /**
     * @dev A signed publication names another version than the next one.
     * @param expected The next version number.
     * @param given The version signed.
     */
    error UnexpectedVersion(uint32 expected, uint32 given);

    /// @dev A version's root digest cannot be zero (zero means "no such version").
    error ZeroDigest();

    /**
     * @dev The model has no such version.
     * @param modelId The model.
     * @param version The version asked for.
     */
    error UnknownVersion(bytes32 modelId, uint32 version);

    /**
     * @dev The version is revoked already.
     * @param modelId The model.
     * @param version The version.
     */
    error VersionAlreadyRevoked(bytes32 modelId, uint32 version);

    /**
     * @dev The vendor does not sell licences of this model now.
     * @param modelId The model.
     */
    error NotListed(bytes32 modelId);

    /**
     * @dev The price is above what the buyer agreed to pay (e.g. raised in front of the purchase).
     * @param price The current price in wei.
     * @param maxPrice The most the buyer agreed to pay.
     */
    error PriceAboveMax(uint256 price, uint256 maxPrice);

    /**
     * @dev The payment is below the price.
     * @param price The price in wei.
     * @param paid The wei sent.
     */
    error InsufficientPayment(uint256 price, uint256 paid);

    /**
     * @dev A licence cannot be held by the zero address.
     * @param licensee The licensee given.
     */
    error InvalidLicensee(address licensee);

    /**
     * @dev The licensee holds a perpetual licence already: buying again would take money for nothing.
     * @param modelId The model.
     * @param licensee The licensee.
     */
    error LicenseAlreadyPerpetual(bytes32 modelId, address licensee);

    /**
     * @dev The licence a purchase would grant ends before the minimum the buyer stated, e.g. because
     * the vendor shortened the licence length (or ended a perpetual licence) in front of the purchase.
     * @param expiresAt The expiry the purchase would have recorded (unix seconds, {PERPETUAL} for ever).
     * @param minExpiresAt The lowest expiry the buyer accepts.
     */
    error ExpiryBelowMinimum(uint64 expiresAt, uint64 minExpiresAt);

    /**
     * @dev A purchase names 0 seats or more than {MAX_SEATS_PER_PURCHASE}, or would take a perpetual
     * licence's seats past `type(uint32).max`.
     * @param seats The seats asked for.
     */
    error InvalidSeatCount(uint32 seats);

    /**
     * @dev A renewal of a licence still valid must cover at least the seats it holds: all of them
     * share one expiry, so fewer would drop paid seats without saying so.
     * @param held The seats the licence holds now.
     */
    error SeatsBelowHeld(uint32 held);

    /**
     * @dev The caller has no credit to withdraw.
     * @param payee The caller.
     */
    error NothingToWithdraw(address payee);

    /**
     * @dev Sending the credit failed (the receiver reverted); the credit is kept.
     * @param payee The caller.
     * @param amount The wei that could not be sent.
     */
    error WithdrawFailed(address payee, uint256 amount);

    /**
     * @dev The platform fee is above the hard cap.
     * @param bps The fee given.
     * @param maxBps {MAX_PLATFORM_FEE_BPS}.
     */
    error PlatformFeeTooHigh(uint16 bps, uint16 maxBps);

    /**
     * @dev The platform fee recipient cannot be the zero address.
     * @param recipient The recipient given.
     */
    error InvalidFeeRecipient(address recipient);

    /**
     * @dev Only a receipt operator ({setReceiptOperator}) may anchor receipts.
     * @param caller The account that tried.
     */
    error NotReceiptOperator(address caller);

    /**
     * @dev A receipt batch needs a non-zero root and at least one receipt: an empty tree proves nothing.
     * @param root The root given.
     * @param count The count given.
     */
    error InvalidReceiptBatch(bytes32 root, uint32 count);

    // ------------------------------------------------------------------ models

    /**
     * @dev Registers a model whose vendor is the caller, listed for sale from the start.
     *
     * Emits a {ModelCreated} event.
     * @param slugHash keccak256 of the model's UTF-8 slug; `modelId = keccak256(abi.encode(vendor, slugHash))`.
     * @param price Licence price in wei.
     * @param licenseDuration Licence length in seconds; 0 means perpetual.
     * @param parentId The model this one derives from, or zero.
     * @param upstreamBps Share (basis points) of what reaches this model that flows to the parent;
     * 0 for a root model.
     * @return modelId The new model's id.
     */
    function createModel(bytes32 slugHash, uint96 price, uint64 licenseDuration, bytes32 parentId, uint16 upstreamBps)
        external
        returns (bytes32 modelId);

    /**
     * @dev Registers a model for `vendor`, authorised by the vendor's EIP-712 `CreateModel`
     * signature (with the vendor's next nonce from {nonces}); anyone may submit it.
     *
     * Emits a {ModelCreated} event.
     * @param slugHash See {createModel}.
     * @param price See {createModel}.
     * @param licenseDuration See {createModel}.
     * @param parentId See {createModel}.
     * @param upstreamBps See {createModel}.
     * @param vendor The vendor who signed, and whose model it is.
     * @param deadline The last second (unix) the signature is valid.
     * @param signature The vendor's EIP-712 `CreateModel` signature.
     * @return modelId The new model's id.
     */
    function createModelBySig(
        bytes32 slugHash,
        uint96 price,
        uint64 licenseDuration,
        bytes32 parentId,
        uint16 upstreamBps,
        address vendor,
        uint256 deadline,
        bytes calldata signature
    ) external returns (bytes32 modelId);

    /**
     * @dev Changes a model's licence terms. Vendor only. Licences already sold keep their expiry.
     *
     * Emits a {TermsChanged} event.
     * @param modelId The model.
     * @param price The new licence price in wei.
     * @param licenseDuration The new licence length in seconds; 0 means perpetual.
     * @param listed Whether the model can be bought.
     */
    function setTerms(bytes32 modelId, uint96 price, uint64 licenseDuration, bool listed) external;

    // ---------------------------------------------------------------- versions

    /**
     * @dev Publishes the next version of a model, sent by its vendor.
     *
     * Emits a {VersionPublished} event.
     * @param modelId The model.
     * @param rootDigest The root digest of the version's manifest; not zero.
     * @param metadataDigest SHA-256 of the version's canonical metadata JSON.
     * @return version The new version number (1, 2, 3 ... per model).
     */
    function publishVersion(bytes32 modelId, bytes32 rootDigest, bytes32 metadataDigest)
        external
        returns (uint32 version);

    /**
     * @dev Publishes version `version` of a model with the vendor's EIP-712 `PublishVersion`
     * signature; any relayer may submit. `version` must be the next one, so a signature can be
     * used once, for the version it names.
     *
     * Emits a {VersionPublished} event.
     * @param modelId The model.
     * @param version The version signed: the next one.
     * @param rootDigest The root digest of the version's manifest; not zero.
     * @param metadataDigest SHA-256 of the version's canonical metadata JSON.
     * @param deadline The last second (unix) the signature is valid.
     * @param signature The vendor's EIP-712 `PublishVersion` signature.
     */
    function publishVersionBySig(
        bytes32 modelId,
        uint32 version,
        bytes32 rootDigest,
        bytes32 metadataDigest,
        uint256 deadline,
        bytes calldata signature
    ) external;

    /**
     * @dev Marks a published version as revoked (compromised, broken, withdrawn). Vendor only, once.
     *
     * Emits a {VersionRevoked} event.
     * @param modelId The model.
     * @param version The published version to revoke.
     * @param reason A short reason code chosen by the vendor (e.g. a bytes32 string).
     */
    function revokeVersion(bytes32 modelId, uint32 version, bytes32 reason) external;

    // ---------------------------------------------------------------- licences

    /**
     * @dev Buys (or renews) a one-seat licence on `modelId` for `licensee`, paid by the caller,
     * whatever its length. Same as the four-argument {purchaseLicense} with no minimum expiry.
     *
     * Emits {LicensePurchased}, then {PlatformFeeCredited}, {RoyaltyCredited} (one per payee) and
     * {OverpaymentCredited} for what they credit.
     * @param modelId The model licensed.
     * @param licensee Who holds the licence (not necessarily the caller).
     * @param maxPrice The most the caller agrees to pay; protects against a price raised in front
     * of this transaction. Any payment above the price is credited back to the caller.
     */
    function purchaseLicense(bytes32 modelId, address licensee, uint256 maxPrice) external payable;

    /**
     * @dev Buys (or renews) a one-seat licence on `modelId` for `licensee`, paid by the caller, and
     * reverts unless it lasts at least until `minExpiresAt`. Same as {purchaseLicenseSeats} with
     * one seat, except that a held perpetual licence reverts {LicenseAlreadyPerpetual} (so a buyer
     * who already owns the model is never charged again by a one-seat purchase).
     *
     * Protects the buyer from a {setTerms} that shortens the licence length (or ends perpetual
     * licences) in front of this transaction, as `maxPrice` does for the price. A perpetual licence
     * records {PERPETUAL} and satisfies every minimum; a timed one never reaches {PERPETUAL}, so
     * `minExpiresAt = PERPETUAL` accepts a perpetual licence only.
     *
     * Emits the same events as the three-argument {purchaseLicense}.
     * @param modelId The model licensed.
     * @param licensee Who holds the licence (not necessarily the caller).
     * @param maxPrice The most the caller agrees to pay. Any payment above the price is credited
     * back to the caller.
     * @param minExpiresAt The lowest expiry (unix seconds) the caller accepts; reverts with
     * {ExpiryBelowMinimum} below it, and nothing is paid.
     */
    function purchaseLicense(bytes32 modelId, address licensee, uint256 maxPrice, uint64 minExpiresAt)
        external
        payable;

    /**
     * @dev Buys `seats` seats of a licence on `modelId` for `licensee`, paid by the caller: the
     * model's price times `seats`, split like one sale of that total (fee, then the lineage, to
     * the wei), and reverts unless the licence lasts at least until `minExpiresAt`.
     *
     * - Perpetual model: a held perpetual licence gains the seats; otherwise the licence becomes
     *   perpetual with `seats` seats.
     * - Timed model: with no licence, or an expired one, the licence holds `seats` seats until now
     *   plus the licence length. A licence still valid is renewed: `seats` must be at least the
     *   seats held ({SeatsBelowHeld}), the expiry extends from the current expiry, and the licence
     *   holds `seats` seats. Seats added by a renewal share the licence's one expiry: the seats
     *   beyond those held run for the remaining period plus the licence length.
     * - A perpetual licence on a model now sold with a timed length reverts {LicenseAlreadyPerpetual}.
     *
     * Emits the same events as {purchaseLicense}; {LicensePurchased} carries the seats held after.
     * @param modelId The model licensed.
     * @param licensee Who holds the licence (not necessarily the caller).
     * @param seats The seats bought: 1 to {MAX_SEATS_PER_PURCHASE} ({InvalidSeatCount}).
     * @param maxPrice The most the caller agrees to pay for all the seats ({PriceAboveMax}). Any
     * payment above the total is credited back to the caller.
     * @param minExpiresAt The lowest expiry (unix seconds) the caller accepts ({ExpiryBelowMinimum});
     * 0 for any.
     */
    function purchaseLicenseSeats(
        bytes32 modelId,
        address licensee,
        uint32 seats,
        uint256 maxPrice,
        uint64 minExpiresAt
    ) external payable;

    /**
     * @dev Sends the caller everything credited to them (royalties, fees, overpayments).
     *
     * Emits a {Withdrawn} event.
     */
    function withdraw() external;

    // ------------------------------------------------------------------- owner

    /**
     * @dev Sets the platform fee taken first from every sale. Owner only; capped at
     * {MAX_PLATFORM_FEE_BPS}.
     *
     * Emits a {PlatformFeeChanged} event.
     * @param bps The fee in basis points.
     * @param recipient Who is credited the fee; not the zero address.
     */
    function setPlatformFee(uint16 bps, address recipient) external;

    /**
     * @dev Grants (`allowed`) or withdraws the right to call {anchorReceipts}. Owner only. The
     * marketplace's relayer is made an operator at deployment when it deploys as the owner; on a
     * public chain the owner calls this for the relayer's address.
     *
     * Emits a {ReceiptOperatorChanged} event.
     * @param operator The account.
     * @param allowed Whether it may anchor.
     */
    function setReceiptOperator(address operator, bool allowed) external;

    // ---------------------------------------------------------------- receipts

    /**
     * @dev Anchors the root of a batch of download receipts: leaves
     * `keccak256(bytes.concat(keccak256(abi.encode(receipt fields))))`, tree built as OpenZeppelin's
     * StandardMerkleTree, so {MerkleProof-verify} checks a receipt's proof against `root`.
     * Receipt operators only. The cost does not depend on `count`: one batch, one storage record
     * and one event, whatever the number of receipts it covers.
     *
     * Emits a {ReceiptsAnchored} event.
     * @param root The tree's root; not zero.
     * @param count The receipts in the tree; not zero.
     * @return batchId The batch's number: 1 for the first batch, then consecutive.
     */
    function anchorReceipts(bytes32 root, uint32 count) external returns (uint64 batchId);

    // ------------------------------------------------------------------- views

    /**
     * @dev A registered model; `vendor == address(0)` means no such model.
     * @param modelId The model.
     * @return vendor The model's vendor.
     * @return latestVersion The highest published version number (0 when none).
     * @return upstreamBps Share (basis points) of what reaches the model that flows to the parent.
     * @return depth How many ancestors the model has.
     * @return listed Whether the model can be bought.
     * @return price Licence price in wei.
     * @return licenseDuration Licence length in seconds; 0 means perpetual.
     * @return parentId The model it derives from, or zero.
     */
    function models(bytes32 modelId)
        external
        view
        returns (
            address vendor,
            uint32 latestVersion,
            uint16 upstreamBps,
            uint8 depth,
            bool listed,
            uint96 price,
            uint64 licenseDuration,
            bytes32 parentId
        );

    /**
     * @dev The root digest of a published version, or zero if there is no such version.
     * @param modelId The model.
     * @param version The version.
     * @return The version's root digest.
     */
    function versionDigest(bytes32 modelId, uint32 version) external view returns (bytes32);

    /**
     * @dev Whether the vendor revoked that version.
     * @param modelId The model.
     * @param version The version.
     * @return True once revoked.
     */
    function isRevoked(bytes32 modelId, uint32 version) external view returns (bool);

    /**
     * @dev The highest published version number of a model.
     * @param modelId The model.
     * @return The version number; 0 when none.
     */
    function latestVersion(bytes32 modelId) external view returns (uint32);

    /**
     * @dev When the licensee's licence ends.
     * @param modelId The model.
     * @param licensee The licensee.
     * @return Unix seconds; 0 never bought; {PERPETUAL} for ever.
     */
    function licenseExpiry(bytes32 modelId, address licensee) external view returns (uint64);

    /**
     * @dev Whether `licensee` holds a licence on `modelId` valid now.
     * @param modelId The model.
     * @param licensee The licensee.
     * @return True while the licence's expiry is in the future.
     */
    function hasLicense(bytes32 modelId, address licensee) external view returns (bool);

    /**
     * @dev The seats of `licensee`'s licence on `modelId` valid now.
     * @param modelId The model.
     * @param licensee The licensee.
     * @return The seats held; 0 when the licence has expired or was never bought.
     */
    function licenseSeats(bytes32 modelId, address licensee) external view returns (uint32);

    /**
     * @dev The licence recorded for `licensee` on `modelId`, valid or not (one storage read).
     * @param modelId The model.
     * @param licensee The licensee.
     * @return expiresAt Unix seconds; 0 never bought; {PERPETUAL} for ever.
     * @return seats The seats of that licence (kept after it expires; 0 never bought).
     */
    function licenseOf(bytes32 modelId, address licensee) external view returns (uint64 expiresAt, uint32 seats);

    /**
     * @dev Wei credited to `payee` and not yet withdrawn.
     * @param payee The payee.
     * @return The credit in wei.
     */
    function creditOf(address payee) external view returns (uint256);

    /**
     * @dev The id a vendor's model gets.
     * @param vendor The vendor.
     * @param slugHash keccak256 of the model's UTF-8 slug.
     * @return keccak256(abi.encode(vendor, slugHash)).
     */
    function computeModelId(address vendor, bytes32 slugHash) external pure returns (bytes32);

    /**
     * @dev The EIP-712 domain separator of this deployment (chain id and address bound).
     * @return The domain separator.
     */
    function domainSeparator() external view returns (bytes32);

    /**
     * @dev The next nonce a vendor's `CreateModel` signature must carry ({createModelBySig}).
     * @param owner The vendor.
     * @return The nonce.
     */
    function nonces(address owner) external view returns (uint256);

    /**
     * @dev The platform fee in basis points.
     * @return The fee taken first from every sale.
     */
    function platformFeeBps() external view returns (uint16);

    /**
     * @dev Who is credited the platform fee.
     * @return The recipient.
     */
    function platformFeeRecipient() external view returns (address);

    /**
     * @dev Highest platform fee the owner can ever set, in basis points (10%).
     * @return 1000.
     */
    function MAX_PLATFORM_FEE_BPS() external view returns (uint16);

    /**
     * @dev Longest lineage a model may have (the bought model excluded): bounds purchase gas.
     * @return 8.
     */
    function MAX_LINEAGE_DEPTH() external view returns (uint8);

    /**
     * @dev Licence expiry recorded for a perpetual licence.
     * @return type(uint64).max.
     */
    function PERPETUAL() external view returns (uint64);

    /**
     * @dev Most seats one {purchaseLicenseSeats} may buy: bounds a typo's cost.
     * @return 10000.
     */
    function MAX_SEATS_PER_PURCHASE() external view returns (uint32);

    /**
     * @dev An anchored receipt batch; all zero for a batch id never anchored.
     * @param batchId The batch, from {ReceiptsAnchored}.
     * @return root The batch's Merkle root.
     * @return count The receipts it covers.
     * @return anchoredAt The block timestamp of its anchoring.
     */
    function receiptBatch(uint64 batchId) external view returns (bytes32 root, uint32 count, uint64 anchoredAt);

    /**
     * @dev How many receipt batches have been anchored: the latest batch id.
     * @return The count.
     */
    function receiptBatchCount() external view returns (uint64);

    /**
     * @dev Whether `operator` may call {anchorReceipts}.
     * @param operator The account.
     * @return True for a receipt operator.
     */
    function isReceiptOperator(address operator) external view returns (bool);
}
