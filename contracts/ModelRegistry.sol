// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {Ownable, Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {Nonces} from "@openzeppelin/contracts/utils/Nonces.sol";

/**
 * @title ModelRegistry
 * @notice Provenance registry and license shop for quantized edge models (Hallmark).
 *
 * Vendors register models (terms and lineage), publish versions as the root digest of an
 * OpenSSF Model Signing manifest (EIP-712 signed, so a relayer may submit), and sell licenses.
 * Every payment is split at purchase time into credits: a capped platform fee, then a cascade
 * along the model's lineage where each model keeps `10000 - upstreamBps` basis points of what
 * reaches it for its vendor and passes `upstreamBps` to its parent. Credits are withdrawn by
 * their payees (pull payments), and the credits of one purchase sum to the price to the wei.
 */
contract ModelRegistry is EIP712, Ownable2Step, ReentrancyGuardTransient, Nonces {
    /// @notice Highest platform fee the owner can ever set, in basis points (10%).
    uint16 public constant MAX_PLATFORM_FEE_BPS = 1_000;
    /// @notice Longest lineage a model may have (the bought model excluded): bounds purchase gas.
    uint8 public constant MAX_LINEAGE_DEPTH = 8;
    /// @notice Licence expiry recorded for a perpetual licence.
    uint64 public constant PERPETUAL = type(uint64).max;

    bytes32 private constant _PUBLISH_VERSION_TYPEHASH = keccak256(
        "PublishVersion(bytes32 modelId,uint32 version,bytes32 rootDigest,bytes32 metadataDigest,uint256 deadline)"
    );
    bytes32 private constant _CREATE_MODEL_TYPEHASH = keccak256(
        "CreateModel(address vendor,bytes32 slugHash,uint96 price,uint64 licenseDuration,bytes32 parentId,uint16 upstreamBps,uint256 nonce,uint256 deadline)"
    );

    /**
     * @dev Layout chosen for the two hot paths: publishing a version reads and writes slot 0 only
     * (vendor + latestVersion); a purchase reads slot 0 and slot 1, and slot 2 only when the model
     * has a parent to pay.
     */
    struct Model {
        // slot 0
        address vendor;
        uint32 latestVersion;
        uint16 upstreamBps;
        uint8 depth;
        bool listed;
        // slot 1
        uint96 price;
        uint64 licenseDuration;
        // slot 2
        bytes32 parentId;
    }

    /// @notice The registered models by id; `vendor == address(0)` means no such model.
    mapping(bytes32 modelId => Model) public models;

    mapping(bytes32 modelId => mapping(uint32 version => bytes32 rootDigest)) private _versionDigests;
    mapping(bytes32 modelId => mapping(uint32 version => bool)) private _revoked;
    mapping(bytes32 modelId => mapping(address licensee => uint64 expiresAt)) private _licenseExpiry;
    mapping(address payee => uint256) private _credits;

    // one slot: both are read by every purchase
    uint16 public platformFeeBps;
    address public platformFeeRecipient;

    event ModelCreated(
        bytes32 indexed modelId,
        address indexed vendor,
        bytes32 indexed parentId,
        bytes32 slugHash,
        uint96 price,
        uint64 licenseDuration,
        uint16 upstreamBps
    );
    event TermsChanged(bytes32 indexed modelId, uint96 price, uint64 licenseDuration, bool listed);
    event VersionPublished(
        bytes32 indexed modelId, uint32 indexed version, bytes32 rootDigest, bytes32 metadataDigest, address indexed signer
    );
    event VersionRevoked(bytes32 indexed modelId, uint32 indexed version, bytes32 reason);
    event LicensePurchased(
        bytes32 indexed modelId, address indexed licensee, address indexed payer, uint256 price, uint64 expiresAt
    );
    event RoyaltyCredited(address indexed payee, bytes32 indexed modelId, uint256 amount);
    /// @notice Payment above the price, credited back to the payer (withdrawable like a royalty).
    event OverpaymentCredited(address indexed payer, bytes32 indexed modelId, uint256 amount);
    event Withdrawn(address indexed payee, uint256 amount);
    event PlatformFeeChanged(uint16 bps, address indexed recipient);

    error UnknownModel(bytes32 modelId);
    error ModelAlreadyExists(bytes32 modelId);
    error NotModelVendor(bytes32 modelId, address caller);
    error InvalidUpstreamBps(uint16 upstreamBps);
    error LineageTooDeep(bytes32 parentId, uint8 parentDepth);
    error ExpiredSignature(uint256 deadline);
    error InvalidSigner(address signer, address vendor);
    error UnexpectedVersion(uint32 expected, uint32 given);
    error ZeroDigest();
    error UnknownVersion(bytes32 modelId, uint32 version);
    error VersionAlreadyRevoked(bytes32 modelId, uint32 version);
    error NotListed(bytes32 modelId);
    error PriceAboveMax(uint256 price, uint256 maxPrice);
    error InsufficientPayment(uint256 price, uint256 paid);
    error InvalidLicensee(address licensee);
    error LicenseAlreadyPerpetual(bytes32 modelId, address licensee);
    /**
     * @dev The licence a purchase would grant ends before the minimum the buyer stated, e.g. because
     * the vendor shortened the licence length (or ended a perpetual licence) in front of the purchase.
     * @param expiresAt The expiry the purchase would have recorded (unix seconds, {PERPETUAL} for ever).
     * @param minExpiresAt The lowest expiry the buyer accepts.
     */
    error ExpiryBelowMinimum(uint64 expiresAt, uint64 minExpiresAt);
    error NothingToWithdraw(address payee);
    error WithdrawFailed(address payee, uint256 amount);
    error PlatformFeeTooHigh(uint16 bps, uint16 maxBps);
    error InvalidFeeRecipient(address recipient);

    modifier onlyVendor(bytes32 modelId) {
        _checkVendor(modelId, msg.sender);
        _;
    }

    constructor(address initialOwner, uint16 feeBps, address feeRecipient)
        EIP712("ModelRegistry", "1")
        Ownable(initialOwner)
    {
        _setPlatformFee(feeBps, feeRecipient);
    }

    // ------------------------------------------------------------------ models

    /**
     * @notice Registers a model whose vendor is the caller. Listed for sale from the start.
     * @param slugHash keccak256 of the model's UTF-8 slug; `modelId = keccak256(abi.encode(vendor, slugHash))`.
     * @param price Licence price in wei.
     * @param licenseDuration Licence length in seconds; 0 means perpetual.
     * @param parentId The model this one derives from, or zero.
     * @param upstreamBps Share (basis points) of what reaches this model that flows to the parent.
     * @return modelId The new model's id.
     */
    function createModel(bytes32 slugHash, uint96 price, uint64 licenseDuration, bytes32 parentId, uint16 upstreamBps)
        external
        returns (bytes32 modelId)
    {
        return _createModel(msg.sender, slugHash, price, licenseDuration, parentId, upstreamBps);
    }

    /**
     * @notice Registers a model for `vendor`, authorised by the vendor's EIP-712 `CreateModel`
     * signature (with the vendor's next nonce from {nonces}); anyone may submit it.
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
    ) external returns (bytes32 modelId) {
        if (block.timestamp > deadline) revert ExpiredSignature(deadline);
        bytes32 structHash = keccak256(
            abi.encode(
                _CREATE_MODEL_TYPEHASH,
                vendor,
                slugHash,
                price,
                licenseDuration,
                parentId,
                upstreamBps,
                _useNonce(vendor),
                deadline
            )
        );
        address signer = ECDSA.recover(_hashTypedDataV4(structHash), signature);
        if (signer != vendor) revert InvalidSigner(signer, vendor);
        return _createModel(vendor, slugHash, price, licenseDuration, parentId, upstreamBps);
    }

    /**
     * @notice Changes a model's licence terms. Vendor only. Licences already sold keep their expiry.
     */
    function setTerms(bytes32 modelId, uint96 price, uint64 licenseDuration, bool listed)
        external
        onlyVendor(modelId)
    {
        Model storage model = models[modelId];
        model.price = price;
        model.licenseDuration = licenseDuration;
        model.listed = listed;
        emit TermsChanged(modelId, price, licenseDuration, listed);
    }

    // ---------------------------------------------------------------- versions

    /**
     * @notice Publishes the next version of a model, sent by its vendor.
     * @return version The new version number (1, 2, 3 ... per model).
     */
    function publishVersion(bytes32 modelId, bytes32 rootDigest, bytes32 metadataDigest)
        external
        returns (uint32 version)
    {
        Model storage model = _existingModel(modelId);
        if (model.vendor != msg.sender) revert NotModelVendor(modelId, msg.sender);
        version = model.latestVersion + 1;
        _publish(model, modelId, version, rootDigest, metadataDigest, msg.sender);
    }

    /**
     * @notice Publishes version `version` of a model with the vendor's EIP-712 `PublishVersion`
     * signature; any relayer may submit. `version` must be the next one, so a signature can be
     * used once, for the version it names.
     */
    function publishVersionBySig(
        bytes32 modelId,
        uint32 version,
        bytes32 rootDigest,
        bytes32 metadataDigest,
        uint256 deadline,
        bytes calldata signature
    ) external {
        if (block.timestamp > deadline) revert ExpiredSignature(deadline);
        Model storage model = _existingModel(modelId);
        address vendor = model.vendor;
        bytes32 structHash =
            keccak256(abi.encode(_PUBLISH_VERSION_TYPEHASH, modelId, version, rootDigest, metadataDigest, deadline));
        address signer = ECDSA.recover(_hashTypedDataV4(structHash), signature);
        if (signer != vendor) revert InvalidSigner(signer, vendor);
        uint32 expected = model.latestVersion + 1;
        if (version != expected) revert UnexpectedVersion(expected, version);
        _publish(model, modelId, version, rootDigest, metadataDigest, signer);
    }

    /**
     * @notice Marks a published version as revoked (compromised, broken, withdrawn). Vendor only.
     * @param reason A short reason code chosen by the vendor (e.g. a bytes32 string).
     */
    function revokeVersion(bytes32 modelId, uint32 version, bytes32 reason) external onlyVendor(modelId) {
        if (version == 0 || version > models[modelId].latestVersion) revert UnknownVersion(modelId, version);
        if (_revoked[modelId][version]) revert VersionAlreadyRevoked(modelId, version);
        _revoked[modelId][version] = true;
        emit VersionRevoked(modelId, version, reason);
    }

    // ---------------------------------------------------------------- licences

    /**
     * @notice Buys (or renews) a licence on `modelId` for `licensee`, paid by the caller, whatever
     * its length. Same as the four-argument {purchaseLicense} with no minimum expiry.
     * @param maxPrice The most the caller agrees to pay; protects against a price raised in front
     * of this transaction. Any payment above the price is credited back to the caller.
     */
    function purchaseLicense(bytes32 modelId, address licensee, uint256 maxPrice) external payable {
        _purchaseLicense(modelId, licensee, maxPrice, 0);
    }

    /**
     * @notice Buys (or renews) a licence on `modelId` for `licensee`, paid by the caller, and
     * reverts unless it lasts at least until `minExpiresAt`.
     * @dev Protects the buyer from a {setTerms} that shortens the licence length (or ends perpetual
     * licences) in front of this transaction, as `maxPrice` does for the price. A perpetual licence
     * records {PERPETUAL} and satisfies every minimum; a timed one never reaches {PERPETUAL}, so
     * `minExpiresAt = PERPETUAL` accepts a perpetual licence only.
     * @param modelId The model licensed.
     * @param licensee Who holds the licence (not necessarily the caller).
     * @param maxPrice The most the caller agrees to pay. Any payment above the price is credited
     * back to the caller.
     * @param minExpiresAt The lowest expiry (unix seconds) the caller accepts; reverts with
     * {ExpiryBelowMinimum} below it, and nothing is paid.
     */
    function purchaseLicense(bytes32 modelId, address licensee, uint256 maxPrice, uint64 minExpiresAt)
        external
        payable
    {
        _purchaseLicense(modelId, licensee, maxPrice, minExpiresAt);
    }

    /**
     * @notice Sends the caller everything credited to them (royalties, fees, overpayments).
     */
    function withdraw() external nonReentrant {
        uint256 amount = _credits[msg.sender];
        if (amount == 0) revert NothingToWithdraw(msg.sender);
        _credits[msg.sender] = 0;
        emit Withdrawn(msg.sender, amount);
        (bool ok,) = payable(msg.sender).call{value: amount}("");
        if (!ok) revert WithdrawFailed(msg.sender, amount);
    }

    // ------------------------------------------------------------------- owner

    /**
     * @notice Sets the platform fee taken first from every sale. Capped at {MAX_PLATFORM_FEE_BPS}.
     */
    function setPlatformFee(uint16 bps, address recipient) external onlyOwner {
        _setPlatformFee(bps, recipient);
    }

    // ------------------------------------------------------------------- views

    /// @notice The root digest of a published version, or zero if there is no such version.
    function versionDigest(bytes32 modelId, uint32 version) external view returns (bytes32) {
        return _versionDigests[modelId][version];
    }

    /// @notice Whether the vendor revoked that version.
    function isRevoked(bytes32 modelId, uint32 version) external view returns (bool) {
        return _revoked[modelId][version];
    }

    /// @notice The highest published version number of a model (0 when none).
    function latestVersion(bytes32 modelId) external view returns (uint32) {
        return models[modelId].latestVersion;
    }

    /// @notice When the licensee's licence ends (unix seconds); 0 never bought; {PERPETUAL} forever.
    function licenseExpiry(bytes32 modelId, address licensee) external view returns (uint64) {
        return _licenseExpiry[modelId][licensee];
    }

    /// @notice Whether `licensee` holds a licence on `modelId` valid now.
    function hasLicense(bytes32 modelId, address licensee) external view returns (bool) {
        return _licenseExpiry[modelId][licensee] > block.timestamp;
    }

    /// @notice Wei credited to `payee` and not yet withdrawn.
    function creditOf(address payee) external view returns (uint256) {
        return _credits[payee];
    }

    /// @notice The id a vendor's model gets: keccak256(abi.encode(vendor, slugHash)).
    function computeModelId(address vendor, bytes32 slugHash) public pure returns (bytes32) {
        return keccak256(abi.encode(vendor, slugHash));
    }

    /// @notice The EIP-712 domain separator of this deployment (chain id and address bound).
    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    // ---------------------------------------------------------------- internal

    function _createModel(
        address vendor,
        bytes32 slugHash,
        uint96 price,
        uint64 licenseDuration,
        bytes32 parentId,
        uint16 upstreamBps
    ) private returns (bytes32 modelId) {
        modelId = computeModelId(vendor, slugHash);
        if (models[modelId].vendor != address(0)) revert ModelAlreadyExists(modelId);
        if (upstreamBps > 10_000) revert InvalidUpstreamBps(upstreamBps);
        uint8 depth;
        if (parentId == bytes32(0)) {
            // a root model has nobody upstream to pay
            if (upstreamBps != 0) revert InvalidUpstreamBps(upstreamBps);
        } else {
            uint8 parentDepth = _existingModel(parentId).depth;
            if (parentDepth >= MAX_LINEAGE_DEPTH) revert LineageTooDeep(parentId, parentDepth);
            depth = parentDepth + 1;
        }
        models[modelId] = Model({
            vendor: vendor,
            latestVersion: 0,
            upstreamBps: upstreamBps,
            depth: depth,
            listed: true,
            price: price,
            licenseDuration: licenseDuration,
            parentId: parentId
        });
        emit ModelCreated(modelId, vendor, parentId, slugHash, price, licenseDuration, upstreamBps);
    }

    function _publish(
        Model storage model,
        bytes32 modelId,
        uint32 version,
        bytes32 rootDigest,
        bytes32 metadataDigest,
        address signer
    ) private {
        if (rootDigest == bytes32(0)) revert ZeroDigest();
        model.latestVersion = version;
        _versionDigests[modelId][version] = rootDigest;
        emit VersionPublished(modelId, version, rootDigest, metadataDigest, signer);
    }

    function _purchaseLicense(bytes32 modelId, address licensee, uint256 maxPrice, uint64 minExpiresAt) private {
        Model storage model = _existingModel(modelId);
        if (!model.listed) revert NotListed(modelId);
        if (licensee == address(0)) revert InvalidLicensee(licensee);
        uint256 price = model.price;
        if (price > maxPrice) revert PriceAboveMax(price, maxPrice);
        if (msg.value < price) revert InsufficientPayment(price, msg.value);

        uint64 expiresAt = _extendLicense(modelId, licensee, model.licenseDuration);
        if (expiresAt < minExpiresAt) revert ExpiryBelowMinimum(expiresAt, minExpiresAt);
        emit LicensePurchased(modelId, licensee, msg.sender, price, expiresAt);

        _splitPayment(modelId, model, price);
        if (msg.value > price) {
            uint256 excess = msg.value - price;
            _credits[msg.sender] += excess;
            emit OverpaymentCredited(msg.sender, modelId, excess);
        }
    }

    function _extendLicense(bytes32 modelId, address licensee, uint64 duration) private returns (uint64 expiresAt) {
        uint64 current = _licenseExpiry[modelId][licensee];
        if (current == PERPETUAL) revert LicenseAlreadyPerpetual(modelId, licensee);
        if (duration == 0) {
            expiresAt = PERPETUAL;
        } else {
            // a renewal extends from the later of now and the current expiry: no paid time is lost
            uint64 start = current > block.timestamp ? current : uint64(block.timestamp);
            uint256 end = uint256(start) + duration;
            expiresAt = end >= PERPETUAL ? PERPETUAL - 1 : uint64(end);
        }
        _licenseExpiry[modelId][licensee] = expiresAt;
    }

    /// @dev Platform fee first, then the lineage cascade. Ancestor k (k = 1 is the parent) is
    /// credited its exact share floored: remaining * b0 * ... * b(k-1) * (10000 - bk) / 10000^(k+1),
    /// where bi is model i's upstreamBps and the last ancestor (upstreamBps 0, e.g. a root model)
    /// keeps all that reaches it. The bought model's vendor gets the rest, so it receives every
    /// wei of rounding dust and the credits sum to `price` exactly. Depth <= 8 keeps
    /// remaining * 10000^9 far below 2^256.
    function _splitPayment(bytes32 modelId, Model storage model, uint256 price) private {
        uint256 fee = (price * platformFeeBps) / 10_000;
        if (fee != 0) _credit(platformFeeRecipient, modelId, fee);
        uint256 remaining = price - fee;

        uint256 paidUpstream;
        uint16 bps = model.upstreamBps;
        if (bps != 0 && remaining != 0) {
            uint256 numerator = remaining * bps;
            uint256 denominator = 10_000;
            bytes32 ancestorId = model.parentId;
            while (true) {
                Model storage ancestor = models[ancestorId];
                uint16 ancestorBps = ancestor.upstreamBps;
                uint256 share;
                if (ancestorBps == 0) {
                    share = numerator / denominator;
                    _credit(ancestor.vendor, ancestorId, share);
                    paidUpstream += share;
                    break;
                }
                share = (numerator * (10_000 - ancestorBps)) / (denominator * 10_000);
                _credit(ancestor.vendor, ancestorId, share);
                paidUpstream += share;
                numerator *= ancestorBps;
                denominator *= 10_000;
                ancestorId = ancestor.parentId;
            }
        }
        _credit(model.vendor, modelId, remaining - paidUpstream);
    }

    function _credit(address payee, bytes32 modelId, uint256 amount) private {
        if (amount == 0) return;
        _credits[payee] += amount;
        emit RoyaltyCredited(payee, modelId, amount);
    }

    function _setPlatformFee(uint16 bps, address recipient) private {
        if (bps > MAX_PLATFORM_FEE_BPS) revert PlatformFeeTooHigh(bps, MAX_PLATFORM_FEE_BPS);
        if (recipient == address(0)) revert InvalidFeeRecipient(recipient);
        platformFeeBps = bps;
        platformFeeRecipient = recipient;
        emit PlatformFeeChanged(bps, recipient);
    }

    function _existingModel(bytes32 modelId) private view returns (Model storage model) {
        model = models[modelId];
        if (model.vendor == address(0)) revert UnknownModel(modelId);
    }

    function _checkVendor(bytes32 modelId, address caller) private view {
        address vendor = _existingModel(modelId).vendor;
        if (vendor != caller) revert NotModelVendor(modelId, caller);
    }
}
